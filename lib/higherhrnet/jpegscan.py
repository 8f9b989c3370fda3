"""Checking a JPEG's compressed image data as libjpeg reads it, without decoding any pixel.

A JPEG whose compressed data is damaged (a zero-filled hole left by an interrupted download or a bad sector,
flipped bits) but still ends with its end-of-image marker is decoded by libjpeg into a different picture:
libjpeg only prints "Corrupt JPEG data: ..." on stderr, and OpenCV returns the picture. entropy_data_problem
walks the file's scans and Huffman-decodes the symbols of every block (their lengths only: no coefficient,
no inverse DCT), and reports the first thing libjpeg would warn about, in libjpeg's words:

- "premature end of data segment": a scan (or restart interval) ends before its last block;
- "N extraneous bytes before marker 0xXX": data left over after the last block of a scan or interval;
- "bad Huffman code": bits that are no code of the scan's tables;
- "found marker 0xXX instead of RSTn": restart markers missing or out of order;
- "N extraneous bytes before marker 0xXX" between segments (a damaged table or scan header), and
  "inconsistent progression sequence ...": a progressive scan that does not follow the scans before it.

Checked: baseline, extended and progressive Huffman-coded JPEGs (any sampling factors, 1 to 4 components,
restart intervals, several scans). Not checked (None, as for a clean file): arithmetic-coded, lossless and
hierarchical JPEGs, scans using a Huffman table the file does not define (motion-JPEG frames rely on
libjpeg's default tables) and anything libjpeg itself refuses with an error (bad tables, impossible scan
parameters): those are left to the decoder.

The decoding loop is compiled by numba (cached on disk like the codec's loops), releases the GIL and keeps
its state in local variables and arrays made for each call: several threads may check images at once. It
takes about as long as OpenCV takes to decode the picture, 2 to 3 ms for a 640x425 photo (measured in
tests/test_jpegscan.py's docstring, not asserted).
"""
from __future__ import annotations

import struct

import numpy as np
from numba import njit

__all__ = ["entropy_data_problem"]

# Scan modes (what each block holds).
_SEQUENTIAL, _DC_FIRST, _DC_REFINE, _AC_FIRST, _AC_REFINE = range(5)
# What the decoding loop returns first.
_OK, _PREMATURE, _EXTRANEOUS, _BAD_CODE, _WRONG_RESTART = range(5)

_BASELINE_SOF = (0xC0, 0xC1)        # sequential Huffman (baseline, extended)
_PROGRESSIVE_SOF = 0xC2             # progressive Huffman
_OTHER_SOF = frozenset(range(0xC3, 0xD0)) - {0xC4, 0xC8, 0xCC}   # lossless, hierarchical, arithmetic
_RESTART_MARKERS = range(0xD0, 0xD8)


def entropy_data_problem(data: bytes) -> str | None:
    """What libjpeg would call corrupt in the compressed data of the JPEG `data` ("premature end of data segment in
    scan 1", ...), or None when every scan decodes exactly to its end (or the file is of a kind not checked; see
    the module docstring)."""
    buffer = np.frombuffer(data, np.uint8)
    clean = np.empty(len(data) + _PADDING, np.uint8)
    frame = None
    tables = _HuffmanTables()
    restart_interval, scans, position = 0, 0, 2
    masks = None
    while True:
        marker, position, skipped = _next_marker(data, position)
        if marker is None:
            return None            # no end-of-image marker: truncation is images.py's check
        if skipped:                # between segments (a scan's own leftovers are counted by _decode_scan)
            where = f" after scan {scans}" if scans else ""
            return f"{skipped} extraneous bytes before marker 0x{marker:02x}{where}"
        if marker == 0xD9:
            return None
        if marker in _RESTART_MARKERS or marker == 0x01:
            continue               # stray RST after a scan's last block: libjpeg skips it silently
        if position + 2 > len(data):
            return None
        (length,) = struct.unpack_from(">H", data, position)
        body, end = position + 2, position + length
        if length < 2 or end > len(data):
            return None
        segment = data[body:end]
        if marker in _BASELINE_SOF or marker == _PROGRESSIVE_SOF:
            if frame is not None:
                return None
            frame = _Frame.parse(segment, marker == _PROGRESSIVE_SOF)
            if frame is None:
                return None
            masks = np.zeros(frame.total_blocks, np.uint64) if frame.progressive else np.zeros(1, np.uint64)
        elif marker in _OTHER_SOF:
            return None
        elif marker == 0xC4:
            if not tables.define(segment):
                return None
        elif marker == 0xDD:
            if len(segment) < 2:
                return None
            (restart_interval,) = struct.unpack_from(">H", segment)
        elif marker == 0xDA:
            if frame is None:
                return None
            scan = frame.scan(segment, tables)
            if scan is None:
                return None
            scans += 1
            problem = frame.progression_problem(segment) if frame.progressive else None
            if problem:
                return f"{problem} in scan {scans}"
            status, first, second = _decode_scan(buffer, end, clean, restart_interval, masks, tables.lookup,
                                                 tables.maxcode, tables.valoffset, tables.values, *scan)
            if status != _OK:
                return _describe(status, first, second, scans)
            if first >= len(data):
                return None
            position = first - 1   # the 0xFF before the code byte of the marker after the scan
            continue
        position = end


def _describe(status: int, first: int, second: int, scan: int) -> str:
    where = f" in scan {scan}"
    if status == _PREMATURE:
        return "premature end of data segment" + where
    if status == _EXTRANEOUS:
        marker = f"0x{second:02x}" if second >= 0 else "the end of the file"
        return f"{first} extraneous bytes before marker {marker}{where}"
    if status == _BAD_CODE:
        return "bad Huffman code" + where
    found = f"marker 0x{first:02x}" if first >= 0 else "the end of the file"
    return f"found {found} instead of RST{second - 0xD0}{where}"


def _next_marker(data: bytes, position: int) -> tuple[int | None, int, int]:
    """(marker code, position after it, bytes skipped before it) for the first marker at or after position, as
    libjpeg's next_marker finds it: 0xFF fill bytes are skipped freely, anything else counts (FF 00 as two
    bytes); (None, len, skipped) when there is none."""
    skipped = 0
    while True:
        found = data.find(b"\xff", position)
        if found < 0:
            return None, len(data), skipped + len(data) - position
        skipped += found - position
        position = found + 1
        while position < len(data) and data[position] == 0xFF:
            position += 1
        if position >= len(data):
            return None, len(data), skipped
        if data[position] != 0x00:
            return data[position], position + 1, skipped
        skipped += 2
        position += 1


class _HuffmanTables:
    """The Huffman tables defined so far, for the decoding loop: index class * 4 + id (class 0 DC, 1 AC).
    maxcode[t, l]: the largest code of length l (-1: none); values[t, valoffset[t, l] + code]: its symbol;
    lookup[t, the next 9 bits]: (length << 8) | symbol of a code of up to 9 bits, -1 for longer ones."""

    def __init__(self):
        self.lookup = np.full((8, 512), -1, np.int64)
        self.maxcode = np.full((8, 17), -1, np.int64)
        self.valoffset = np.zeros((8, 17), np.int64)
        self.values = np.zeros((8, 256), np.int64)
        self.defined = [False] * 8
        self.largest_symbol = [0] * 8

    def define(self, segment: bytes) -> bool:
        """Read a DHT segment's tables; False when libjpeg would refuse them."""
        position = 0
        while position < len(segment):
            if position + 17 > len(segment):
                return False
            kind = segment[position]
            table_class, table_id = kind >> 4, kind & 15
            if table_class > 1 or table_id > 3:
                return False
            counts = segment[position + 1: position + 17]
            total = sum(counts)
            values = segment[position + 17: position + 17 + total]
            if total > 256 or len(values) < total:
                return False
            index = table_class * 4 + table_id
            if not _build_table(np.frombuffer(counts, np.uint8), np.frombuffer(values, np.uint8), self.lookup[index],
                                self.maxcode[index], self.valoffset[index], self.values[index]):
                return False
            self.defined[index] = True
            self.largest_symbol[index] = max(values, default=0)
            position += 17 + total
        return True


class _Frame:
    """A frame header (SOF0-2): the image size and each component's id and sampling factors."""

    def __init__(self, width, height, components, progressive):
        self.width, self.height, self.progressive = width, height, progressive
        self.components = components           # [(id, h, v)]
        self.max_h = max(h for _, h, _ in components)
        self.max_v = max(v for _, _, v in components)
        # Each component's block grid (libjpeg's width_in_blocks, height_in_blocks) and its first block in
        # the progressive coefficient masks.
        self.grid, self.offset, total = {}, {}, 0
        for component, h, v in components:
            columns = -(-width * h // (self.max_h * 8))
            rows = -(-height * v // (self.max_v * 8))
            self.grid[component], self.offset[component] = (columns, rows), total
            total += columns * rows
        self.total_blocks = total
        # Progressive: the successive-approximation bit each coefficient of each component was last sent at
        # (-1: not yet), as libjpeg's coef_bits.
        self.coefficient_bits = {component: [-1] * 64 for component, _, _ in components}

    @classmethod
    def parse(cls, segment: bytes, progressive: bool) -> "_Frame | None":
        if len(segment) < 6:
            return None
        _, height, width, count = struct.unpack_from(">BHHB", segment)
        if height == 0 or width == 0 or count == 0 or count > 4 or len(segment) < 6 + 3 * count:
            return None
        components = []
        for i in range(count):
            component, sampling = segment[6 + 3 * i], segment[7 + 3 * i]
            h, v = sampling >> 4, sampling & 15
            if not (1 <= h <= 4 and 1 <= v <= 4):
                return None
            components.append((component, h, v))
        return cls(width, height, components, progressive)

    def progression_problem(self, segment: bytes) -> str | None:
        """libjpeg's check of a progressive scan (checked by scan() first) against the scans before it: each
        coefficient refined by one bit at a time, AC coefficients only after the DC ones. Records the scan."""
        count = segment[0]
        ss, se, approximation = segment[1 + 2 * count: 4 + 2 * count]
        ah, al = approximation >> 4, approximation & 15
        indices = [component for component, _, _ in self.components]
        problem = None
        for i in range(count):
            component = segment[1 + 2 * i]
            bits = self.coefficient_bits[component]
            if ss and bits[0] < 0 and problem is None:
                problem = (indices.index(component), 0)
            for k in range(ss, se + 1):
                if ah != max(bits[k], 0) and problem is None:
                    problem = (indices.index(component), k)
                bits[k] = al
        return problem and "inconsistent progression sequence for component {} coefficient {}".format(*problem)

    def scan(self, segment: bytes, tables: _HuffmanTables) -> tuple | None:
        """The decoding loop's scan arguments for a SOS segment; None when it cannot be checked."""
        if len(segment) < 1:
            return None
        count = segment[0]
        if count < 1 or count > len(self.components) or len(segment) < 4 + 2 * count:
            return None
        ss, se, approximation = segment[1 + 2 * count: 4 + 2 * count]
        ah, al = approximation >> 4, approximation & 15
        sampling = {component: (h, v) for component, h, v in self.components}
        if self.progressive:
            if (ah != 0 and al != ah - 1) or al > 13:
                return None
            if ss == 0:
                mode = _DC_FIRST if ah == 0 else _DC_REFINE
                if se != 0:
                    return None
            else:
                mode = _AC_FIRST if ah == 0 else _AC_REFINE
                if count != 1 or se < ss or se > 63:
                    return None
        else:
            mode, ss, se = _SEQUENTIAL, 0, 63
        blocks_h, blocks_v, dc, ac, offsets = [], [], [], [], []
        for i in range(count):
            component, selectors = segment[1 + 2 * i], segment[2 + 2 * i]
            if component not in sampling:
                return None
            dc_table, ac_table = selectors >> 4, 4 + (selectors & 15)
            if dc_table > 3 or ac_table > 7:
                return None
            needs_dc = mode in (_SEQUENTIAL, _DC_FIRST)
            needs_ac = mode in (_SEQUENTIAL, _AC_FIRST, _AC_REFINE)
            if (needs_dc and (not tables.defined[dc_table] or tables.largest_symbol[dc_table] > 15)) or \
                    (needs_ac and not tables.defined[ac_table]):
                return None
            h, v = sampling[component] if count > 1 else (1, 1)
            blocks_h.append(h)
            blocks_v.append(v)
            dc.append(dc_table)
            ac.append(ac_table)
            offsets.append(self.offset[component])
        if count > 1:    # interleaved: MCUs of h x v blocks of each component, over the whole image
            mcus_x = -(-self.width // (self.max_h * 8))
            mcus_y = -(-self.height // (self.max_v * 8))
        else:            # one component: one block an MCU, over the component's block grid
            mcus_x, mcus_y = self.grid[segment[1]]
        arrays = (np.array(values, np.int64) for values in (blocks_h, blocks_v, dc, ac, offsets))
        return (mode, ss, se, mcus_x, mcus_y, *arrays)


# ---------------------------------------------------------------------------------------------------------------
# The decoding loop. Each data segment (a scan, or one restart interval of it) is first copied without its
# stuffed bytes (FF 00 -> FF) into `clean`, followed by _PADDING zero bytes: libjpeg reads zeros past the end of a
# segment too, and the loop checks where it stands after each code (progressive scans: after each block, at most
# 64 codes and their bits, under 2100 bits). A bit position then walks the segment. Calls made for every code
# return a plain number: a tuple returned by a call costs numba far more.

_PADDING = 320


@njit(cache=True, nogil=True)
def _build_table(counts, symbols, lookup, maxcode, valoffset, values):
    """Fills one table's rows of _HuffmanTables from a DHT table (code counts by length 1-16, the symbols);
    False when libjpeg would refuse it (more codes than a length holds; all-ones codes are reserved)."""
    maxcode[:] = -1
    lookup[:] = -1
    values[:symbols.shape[0]] = symbols
    code, first = 0, 0
    for length in range(1, 17):
        count = np.int64(counts[length - 1])
        if count:
            if code + count >= (1 << length):
                return False
            valoffset[length] = first - code
            if length <= 9:        # every 9-bit string that starts with one of these codes
                for prefix in range(code << (9 - length), (code + count) << (9 - length)):
                    lookup[prefix] = (length << 8) | values[first - code + (prefix >> (9 - length))]
            code += count
            first += count
            maxcode[length] = code - 1
        code <<= 1
    return True


@njit(cache=True, nogil=True)
def _unstuff(data, position, clean):
    """Copies the entropy-coded bytes from `position` up to the next marker into `clean`, as libjpeg reads them
    (FF 00 is an FF byte; FF fill bytes before a marker are skipped), then _PADDING zero bytes. Returns (bytes
    copied, the marker's code, where its code byte is); code -1 at the end of the data."""
    size, count = data.shape[0], 0
    code, where = -1, size
    while position < size:
        byte = data[position]
        if byte == 0xFF:
            following = position + 1
            while following < size and data[following] == 0xFF:
                following += 1
            if following >= size:
                break
            if data[following] != 0:
                code, where = np.int64(data[following]), following
                break
            position = following + 1
        else:
            position += 1
        clean[count] = byte
        count += 1
    clean[count: count + _PADDING] = 0
    return count, code, where


@njit(cache=True, nogil=True)
def _peek16(clean, bit):
    """The 16 bits from bit position `bit`."""
    i = bit >> 3
    word = (np.int64(clean[i]) << 24) | (np.int64(clean[i + 1]) << 16) | (np.int64(clean[i + 2]) << 8) | \
        np.int64(clean[i + 3])
    return (word >> (16 - (bit & 7))) & 0xFFFF


@njit(cache=True, nogil=True)
def _lookup(peek, table, lookup, maxcode, valoffset, values):
    """(length << 8) | symbol of the Huffman code of `table` that starts the 16 bits `peek`; -1 when none does."""
    entry = lookup[table, peek >> 7]
    if entry < 0:
        for length in range(10, 17):
            code = peek >> (16 - length)
            if code <= maxcode[table, length]:
                return (length << 8) | values[table, valoffset[table, length] + code]
    return entry


@njit(cache=True, nogil=True)
def _code(clean, bit, table, lookup, maxcode, valoffset, values):
    """(length << 8) | symbol of the Huffman code of `table` at bit position `bit`; -1 when the bits there are no
    code of the table."""
    return _lookup(_peek16(clean, bit), table, lookup, maxcode, valoffset, values)


@njit(cache=True, nogil=True)
def _progressive_block(clean, bit, mode, ss, se, dc, ac, lookup, maxcode, valoffset, values, masks, block, eobrun):
    """Reads one block of a progressive scan from bit position `bit`. Returns (bit position after it, or -1
    for a bad code; the end-of-band run left)."""
    if mode == _DC_REFINE:
        return bit + 1, eobrun
    if mode == _DC_FIRST:
        entry = _code(clean, bit, dc, lookup, maxcode, valoffset, values)
        return (-1 if entry < 0 else bit + (entry >> 8) + (entry & 0xFF)), eobrun
    nonzero = masks[block]     # which coefficients earlier scans made nonzero
    k = ss
    if mode == _AC_FIRST:
        if eobrun > 0:
            return bit, eobrun - 1
        while k <= se:
            entry = _code(clean, bit, ac, lookup, maxcode, valoffset, values)
            if entry < 0:
                return -1, eobrun
            run, size = (entry >> 4) & 15, entry & 15
            bit += entry >> 8
            if size:
                k += run
                bit += size
                nonzero |= np.uint64(1) << np.uint64(min(k, 63))
            elif run == 15:
                k += 15
            else:
                eobrun = (1 << run) + (_peek16(clean, bit) >> (16 - run) if run else 0) - 1
                bit += run
                break
            k += 1
        masks[block] = nonzero
        return bit, eobrun
    # _AC_REFINE, as libjpeg's decode_mcu_AC_refine: a correction bit for each coefficient already nonzero.
    if eobrun == 0:
        while k <= se:
            entry = _code(clean, bit, ac, lookup, maxcode, valoffset, values)
            if entry < 0:
                return -1, eobrun
            run, size = (entry >> 4) & 15, entry & 15
            bit += entry >> 8
            if size:
                if size != 1:     # a refinement makes a coefficient +-1 or nothing
                    return -1, eobrun
                bit += 1          # its sign
            elif run != 15:
                eobrun = (1 << run) + (_peek16(clean, bit) >> (16 - run) if run else 0)
                bit += run
                break
            while True:           # past `run` zero coefficients, a correction bit for each nonzero one
                if nonzero & (np.uint64(1) << np.uint64(k)):
                    bit += 1
                else:
                    run -= 1
                    if run < 0:
                        break
                k += 1
                if k > se:
                    break
            if size:
                nonzero |= np.uint64(1) << np.uint64(min(k, 63))
            k += 1
    if eobrun > 0:
        while k <= se:
            if nonzero & (np.uint64(1) << np.uint64(k)):
                bit += 1
            k += 1
        eobrun -= 1
    masks[block] = nonzero
    return bit, eobrun


@njit(cache=True, nogil=True)
def _decode_scan(data, start, clean, restart_interval, masks, lookup, maxcode, valoffset, values, mode, ss, se,
                 mcus_x, mcus_y, blocks_h, blocks_v, dc_tables, ac_tables, offsets):
    """Reads a scan's entropy-coded data from `start`. Returns (status, first, second): _OK with the position of
    the code byte of the marker that follows (len(data) at the end of the data); _EXTRANEOUS with the byte count
    and the marker (-1: end of data); _WRONG_RESTART with the marker found and the one expected; _PREMATURE or
    _BAD_CODE."""
    total = mcus_x * mcus_y
    mcu, restarts, position = 0, 0, start
    while True:
        length, marker, where = _unstuff(data, position, clean)
        end = length * 8
        last = total if restart_interval == 0 else min(total, mcu + restart_interval)
        bit, eobrun = 0, 0
        while mcu < last:
            for component in range(blocks_h.shape[0]):
                dc, ac = dc_tables[component], ac_tables[component]
                for _ in range(blocks_h[component] * blocks_v[component]):
                    if mode != _SEQUENTIAL:
                        bit, eobrun = _progressive_block(clean, bit, mode, ss, se, dc, ac, lookup, maxcode,
                                                         valoffset, values, masks, offsets[component] + mcu, eobrun)
                        if bit < 0:
                            return _BAD_CODE, 0, 0
                        if bit > end:
                            return _PREMATURE, 0, 0
                        continue
                    # Sequential blocks, the hot path: a DC code and its bits, then AC codes with theirs, read
                    # through a 64-bit buffer holding at its top the `count` bits before bit position `bit`.
                    k, count, buffer = 0, 0, np.uint64(0)
                    while k < 64:
                        if count < 32:     # top up: a code and its bits take at most 32
                            bit -= count
                            next = bit >> 3
                            count = 0
                            buffer = np.uint64(0)
                            while count <= 56:
                                buffer = (buffer << np.uint64(8)) | np.uint64(clean[next])
                                next += 1
                                count += 8
                            skip = bit & 7
                            buffer <<= np.uint64(64 - count + skip)
                            count -= skip
                            bit += count
                        entry = _lookup(np.int64(buffer >> np.uint64(48)), dc if k == 0 else ac, lookup, maxcode,
                                        valoffset, values)
                        if entry < 0:
                            return (_PREMATURE if bit - count + 16 > end else _BAD_CODE), 0, 0
                        size = entry & 15
                        used = (entry >> 8) + size
                        buffer <<= np.uint64(used)
                        count -= used
                        if bit - count > end:
                            return _PREMATURE, 0, 0
                        if k and not size:
                            k += 15 if entry & 0xF0 == 0xF0 else 64
                        elif k:
                            k += (entry >> 4) & 15
                        k += 1
                    bit -= count
            mcu += 1
        used = (bit + 7) >> 3        # the last byte's unused bits are padding
        if used < length:
            return _EXTRANEOUS, length - used, marker
        if mcu == total:
            return _OK, where, 0
        expected = 0xD0 + restarts % 8
        if marker != expected:
            return _WRONG_RESTART, marker, expected
        restarts += 1
        position = where + 1

"""Default configuration.

Every key that the official HigherHRNet experiment files use is defined here, with the same name and
type, so those YAML files load unchanged. The defaults ARE the official w32_512_adam_lr1e-3 recipe
(HigherHRNet-W32, 512x512 input); keys that file leaves out keep the official code's defaults. The official
code's own defaults differ from the recipe in places (LOSS.AE_LOSS_TYPE 'max', TEST.NMS_KERNEL 3,
TEST.DETECTION_THRESHOLD 0.2, ...): a file that relies on those must now set them explicitly.

A few keys are accepted only for compatibility with official files and have no effect here; they are marked
"(compat)" and listed in COMPAT_KEYS with the reason; setting one to another value than its default gives a
ConfigWarning. Device selection comes from the command line / torchrun, not from GPUS.

The top-down HRNet (MODEL.NAME pose_hrnet) brings the keys of its official code, deep-high-resolution-net.pytorch,
so that its experiment files (experiments/coco/hrnet/*.yaml) load unchanged too. Keys only it reads default to
its COCO W32-256x192 recipe; its own default.py differs in places (DATASET.COLOR_RGB False, TEST.POST_PROCESS and
SHIFT_HEATMAP False, TEST.IMAGE_THRE 0.1, NMS_THRE 0.6, OKS_THRE 0.5, IN_VIS_THRE 0.0, ...): a file that relies
on those must set them. Where both codebases have a key:
- same name, same meaning: TEST.FLIP_TEST, TEST.MODEL_FILE, MODEL.EXTRA.* (STAGE1 defaults to the layer1 that
  pose_hrnet hard-codes), MODEL.NUM_JOINTS, the TRAIN optimiser and schedule keys, CUDNN, DEBUG, ...;
- DATASET.FLIP: a probability here (bottom-up: 0.5), a switch in the top-down files, whose code then flips with
  probability 0.5: `true` loads as 0.5 and `false` as 0 (BOOL_AS_PROBABILITY), the same training either way;
- DATASET.DATASET: 'coco' (top-down files) and 'coco_kpt' (bottom-up files) name the same registered dataset;
- MODEL.TAG_PER_JOINT: in both default.py files; pose_hrnet has no tags and ignores it.
Keys with different names for the same idea are separate, and each network reads its own: the input is
DATASET.INPUT_SIZE (bottom-up, the image's short side) or MODEL.IMAGE_SIZE (top-down, the person crop); the
target sigma DATASET.SIGMA or MODEL.SIGMA; the splits DATASET.TRAIN / TEST or DATASET.TRAIN_SET / TEST_SET; the
batch TRAIN/TEST.IMAGES_PER_GPU (images) or TRAIN/TEST.BATCH_SIZE_PER_GPU (person crops). DATASET.SCALE_FACTOR
(top-down scale augmentation) and TEST.SCALE_FACTOR (bottom-up test scales) are unrelated.
"""
from yacs.config import CfgNode as CN

_C = CN()

_C.OUTPUT_DIR = "output"
_C.LOG_DIR = "log"
_C.DATA_DIR = ""  # prefix for relative DATASET.ROOT, MODEL.PRETRAINED and TEST.MODEL_FILE
_C.GPUS = (0,)  # (compat)
_C.WORKERS = 4
_C.PRINT_FREQ = 20
_C.AUTO_RESUME = False
_C.PIN_MEMORY = True
_C.RANK = 0  # (compat) torchrun's environment decides the rank
_C.VERBOSE = True  # (compat)
_C.DIST_BACKEND = "nccl"  # used on CUDA; CPU runs always use gloo
_C.MULTIPROCESSING_DISTRIBUTED = True  # (compat)
_C.SEED = 0
# SWAHR's key (greatlog/SWAHR-HumanPose): the optimiser's learning rate is TRAIN.LR x WORLD_SIZE. It is a
# constant of the config, NOT the number of processes (SWAHR's code never sets it from the process count;
# its default 8 matches the 8 GPUs its recipes ran on). 1 here, so that the official recipes are unchanged;
# the SWAHR experiment files set 8.
_C.WORLD_SIZE = 1

# Mixed precision. The official code keeps an fp16 copy of the network; we use torch.amp on CUDA, whose
# GradScaler scales the loss dynamically with DYNAMIC_LOSS_SCALE (as the official FP16 recipes set it) or,
# without it, starts at STATIC_LOSS_SCALE and never grows (it still backs off on overflow). The default is the
# official code's (False), so that a recipe which leaves the key out means what it means there.
_C.FP16 = CN()
_C.FP16.ENABLED = False
_C.FP16.STATIC_LOSS_SCALE = 1.0
_C.FP16.DYNAMIC_LOSS_SCALE = False

# torch.backends.cudnn settings, applied by training and evaluation.
_C.CUDNN = CN()
_C.CUDNN.BENCHMARK = True
_C.CUDNN.DETERMINISTIC = False
_C.CUDNN.ENABLED = True

_C.MODEL = CN()
# pose_higher_hrnet (MODEL.EXTRA), hourglass_ae (MODEL.HOURGLASS_AE) or hourglass_residual (MODEL.HOURGLASS);
# top-down: pose_hrnet (MODEL.EXTRA and the keys below) or stacked_hourglass (MODEL.EXTRA.NUM_STACKS, NUM_BLOCKS,
# NUM_FEATS, STEM_INPLANES and the keys below)
_C.MODEL.NAME = "pose_higher_hrnet"
_C.MODEL.INIT_WEIGHTS = True
_C.MODEL.PRETRAINED = ""  # ImageNet HRNet backbone weights, filtered by EXTRA.PRETRAINED_LAYERS
_C.MODEL.NUM_JOINTS = 17
_C.MODEL.TAG_PER_JOINT = True
_C.MODEL.SYNC_BN = False
# Input normalisation, used by the training data and at test time: pixels / 255, then (x - mean) / std per
# RGB channel. Both empty: pixels / 255 only (as the Associative Embedding reference code feeds its hourglass).
_C.MODEL.INPUT_MEAN = [0.485, 0.456, 0.406]
_C.MODEL.INPUT_STD = [0.229, 0.224, 0.225]
# Top-down (pose_hrnet) only. IMAGE_SIZE: [width, height] of the person crop the network sees; HEATMAP_SIZE:
# [width, height] of its heatmaps and training targets, IMAGE_SIZE / 4; SIGMA: the targets' Gaussian sigma in
# heatmap pixels; TARGET_TYPE: "gaussian", the only kind of target the official code has.
_C.MODEL.IMAGE_SIZE = [192, 256]
_C.MODEL.HEATMAP_SIZE = [48, 64]
_C.MODEL.SIGMA = 2.0
_C.MODEL.TARGET_TYPE = "gaussian"

_C.MODEL.EXTRA = CN()
_C.MODEL.EXTRA.PRETRAINED_LAYERS = ["*"]
_C.MODEL.EXTRA.STEM_INPLANES = 64
_C.MODEL.EXTRA.FINAL_CONV_KERNEL = 1
# The representation the 1/4-resolution head sees. hrnet_v1 (official HigherHRNet): the highest-resolution
# branch only. hrnet_v2: all four stage-4 branches, the lower ones bilinearly upsampled to 1/4 and
# concatenated (sum of STAGE4 widths, 15C), then a 1x1 conv + BN + ReLU of HEAD_CHANNELS outputs
# (0: as many as it gets, 15C, as in the HRNetV2 paper).
_C.MODEL.EXTRA.HEAD = "hrnet_v1"
_C.MODEL.EXTRA.HEAD_CHANNELS = 0

# SWAHR (Luo et al., CVPR 2021): a scale-map head per output (conv_scale_layers: 1x1 conv to J, BN, ReLU,
# depthwise 9x9 conv, zero-initialised), whose J maps go in FRONT of each output ([scale maps | heatmaps |
# tags]); training uses its scale-adaptive targets, weight-adaptive heatmap loss and scale regulariser
# (losses.py); test time drops the scale maps. pose_higher_hrnet only.
_C.MODEL.SWAHR = False


def _stage(num_modules, block, num_blocks, num_channels):
    node = CN()
    node.NUM_MODULES = num_modules
    node.NUM_BRANCHES = len(num_blocks)
    node.BLOCK = block
    node.NUM_BLOCKS = list(num_blocks)
    node.NUM_CHANNELS = list(num_channels)
    node.FUSE_METHOD = "SUM"
    return node


# STAGE1 is layer1 (the official code hard-codes 4 Bottlenecks of width 64; here it is configurable
# so that tiny models for tests and CPU training are possible).
_C.MODEL.EXTRA.STAGE1 = _stage(1, "BOTTLENECK", [4], [64])
_C.MODEL.EXTRA.STAGE2 = _stage(1, "BASIC", [4, 4], [32, 64])
_C.MODEL.EXTRA.STAGE3 = _stage(4, "BASIC", [4, 4, 4], [32, 64, 128])
_C.MODEL.EXTRA.STAGE4 = _stage(3, "BASIC", [4, 4, 4, 4], [32, 64, 128, 256])

_C.MODEL.EXTRA.DECONV = CN()
_C.MODEL.EXTRA.DECONV.NUM_DECONVS = 1
_C.MODEL.EXTRA.DECONV.NUM_CHANNELS = [32]
_C.MODEL.EXTRA.DECONV.KERNEL_SIZE = [4]
_C.MODEL.EXTRA.DECONV.NUM_BASIC_BLOCKS = 4
_C.MODEL.EXTRA.DECONV.CAT_OUTPUT = [True]

# MODEL.NAME stacked_hourglass, bearpaw/pytorch-pose's network (models/stacked_hourglass.py): NUM_STACKS
# hourglasses (its --stacks), NUM_BLOCKS bottlenecks per residual stack (its --blocks), each stack's heatmaps an
# output at 1/4 of MODEL.IMAGE_SIZE. NUM_FEATS: the bottleneck width of the hourglasses (their features are
# 2 x NUM_FEATS wide) and STEM_INPLANES (above) the stem conv's, 128 and 64 in the official code, which hard-codes
# them (its --features flag never reaches the network); other values make smaller networks for tests.
_C.MODEL.EXTRA.NUM_STACKS = 8
_C.MODEL.EXTRA.NUM_BLOCKS = 1
_C.MODEL.EXTRA.NUM_FEATS = 128

# MODEL.NAME hourglass_residual: stacked hourglasses with associative embedding built from pre-activation
# residual blocks (the stacked hourglass papers' modules, with the AE paper's widths; not the network the AE
# paper released, which is hourglass_ae). The stem takes the input to 1/4 (a 7x7 stride-2 conv of
# STEM_CHANNELS[0], residuals of STEM_CHANNELS[1], a max-pool); every stack is a hourglass of DEPTH poolings
# whose widths are NUM_CHANNELS (DEPTH + 1 entries, from 1/4 down); each stack predicts J heatmaps + tags at
# 1/4. One network output per stack: LOSS.NUM_STAGES must equal NUM_STACKS and the per-output LOSS.* lists
# weight each stack's loss (intermediate supervision); TEST.WITH_HEATMAPS / TEST.WITH_AE pick the stack(s)
# used at test time (the reference: the last one). The same holds for hourglass_ae's stacks.
_C.MODEL.HOURGLASS = CN()
_C.MODEL.HOURGLASS.NUM_STACKS = 4
_C.MODEL.HOURGLASS.DEPTH = 4
_C.MODEL.HOURGLASS.NUM_CHANNELS = [256, 384, 512, 640, 768]
_C.MODEL.HOURGLASS.STEM_CHANNELS = [64, 128]

# MODEL.NAME hourglass_ae: the network released with the Associative Embedding paper (princeton-vl/pose-ae-train,
# models/posenet.py; its checkpoint files load unchanged). Every block is a conv with bias and a ReLU; with
# BATCH_NORM (released: off) a BatchNorm follows the ReLU of the stem's convs and of the hourglasses' up1,
# low1 and bottom convs, as in pose-ae-train. Stem: 7x7 stride-2 conv 3->64, 3x3 64->128, max-pool, 3x3
# 128->128, 3x3 128->WIDTH (1/4 resolution). Each of NUM_STACKS stacks: a hourglass of DEPTH poolings, two 3x3
# convs, a 1x1 prediction; all but the last add 1x1 convs of their features and predictions to the next
# stack's input. Widths: WIDTH at 1/4, WIDTH + INCREASE one pooling down, then +128 per further pooling
# whatever INCREASE is (pose-ae-train passes its `increase` to the outermost level only; deeper levels use its
# default 128). Each prediction holds J heatmaps, the tags (J, or 1 with TAG_PER_JOINT False) and
# UNUSED_CHANNELS channels nothing reads (released: 34, 68 in all), which still reach the next stack through
# its merge. Inputs: pixels / 255 (MODEL.INPUT_MEAN and INPUT_STD []), sides multiples of 4 * 2**DEPTH (64),
# as pose-ae-train feeds it.
_C.MODEL.HOURGLASS_AE = CN()
_C.MODEL.HOURGLASS_AE.NUM_STACKS = 4
_C.MODEL.HOURGLASS_AE.DEPTH = 4
_C.MODEL.HOURGLASS_AE.WIDTH = 256
_C.MODEL.HOURGLASS_AE.INCREASE = 128
_C.MODEL.HOURGLASS_AE.BATCH_NORM = False
_C.MODEL.HOURGLASS_AE.UNUSED_CHANNELS = 34

_C.LOSS = CN()
_C.LOSS.NUM_STAGES = 2
_C.LOSS.WITH_HEATMAPS_LOSS = (True, True)
_C.LOSS.HEATMAPS_LOSS_FACTOR = (1.0, 1.0)
_C.LOSS.WITH_AE_LOSS = (True, False)
_C.LOSS.AE_LOSS_TYPE = "exp"  # "exp" or "max"
_C.LOSS.PUSH_LOSS_FACTOR = (0.001, 0.001)
_C.LOSS.PULL_LOSS_FACTOR = (0.001, 0.001)
# Top-down (pose_hrnet) only: the heatmap MSE of every joint weighted by its target weight (0 for a joint not
# labelled or outside the crop); with USE_DIFFERENT_JOINTS_WEIGHT also by COCO's per-joint weights (1.2 elbows
# and knees, 1.5 wrists and ankles); with USE_OHKM, online hard keypoint mining: the TOPK joints with the
# largest loss only (the official loss.py has it; its train.py never reads USE_OHKM or TOPK).
_C.LOSS.USE_TARGET_WEIGHT = True
_C.LOSS.USE_DIFFERENT_JOINTS_WEIGHT = False
_C.LOSS.USE_OHKM = False
_C.LOSS.TOPK = 8

_C.DATASET = CN()
_C.DATASET.ROOT = "data/coco"
_C.DATASET.DATASET = "coco_kpt"
_C.DATASET.DATASET_TEST = "coco"
_C.DATASET.NUM_JOINTS = 17
_C.DATASET.MAX_NUM_PEOPLE = 30
_C.DATASET.TRAIN = "train2017"
_C.DATASET.TEST = "val2017"
_C.DATASET.DATA_FORMAT = "jpg"  # (compat) images are read by their file names
# training augmentation
_C.DATASET.MAX_ROTATION = 30
_C.DATASET.MIN_SCALE = 0.75
_C.DATASET.MAX_SCALE = 1.5
_C.DATASET.SCALE_TYPE = "short"
_C.DATASET.MAX_TRANSLATE = 40
_C.DATASET.INPUT_SIZE = 512
# Top-down (pose_hrnet) only: the splits it trains and tests on (the bottom-up networks': TRAIN / TEST).
_C.DATASET.TRAIN_SET = "train2017"
_C.DATASET.TEST_SET = "val2017"
# Top-down (pose_hrnet) training augmentation, as the official JointsDataset applies it: the box scale times
# 1 + N(0, 1) x SCALE_FACTOR clipped to 1 +- SCALE_FACTOR; on 60% of the crops a rotation of N(0, 1) x ROT_FACTOR
# degrees clipped to +-2 ROT_FACTOR; with probability PROB_HALF_BODY, for a person with more than
# NUM_JOINTS_HALF_BODY visible joints, a crop around the upper or the lower body. COLOR_RGB: the network sees
# RGB (False: BGR, the channel order OpenCV reads, the official default.py's). SELECT_DATA: leave out training
# people whose visible joints' centre is far from their box's centre (the official select_data).
_C.DATASET.SCALE_FACTOR = 0.35
_C.DATASET.ROT_FACTOR = 45.0
_C.DATASET.PROB_HALF_BODY = 0.3
_C.DATASET.NUM_JOINTS_HALF_BODY = 8
_C.DATASET.COLOR_RGB = True
_C.DATASET.SELECT_DATA = False
_C.DATASET.HYBRID_JOINTS_TYPE = ""  # (compat)
# Target resolutions: INPUT_SIZE/4, INPUT_SIZE/2, ... HigherHRNet has one output per entry; every stack of
# hourglass_ae and hourglass_residual is trained against the single 1/4 entry.
_C.DATASET.OUTPUT_SIZE = [128, 256]
# Probability of a horizontal flip of a training sample. The top-down files write a switch: true loads as 0.5
# (their code's probability), false as 0 (BOOL_AS_PROBABILITY below).
_C.DATASET.FLIP = 0.5
# heatmap targets
_C.DATASET.SIGMA = 2.0
_C.DATASET.SCALE_AWARE_SIGMA = False
_C.DATASET.BASE_SIZE = 256.0
_C.DATASET.BASE_SIGMA = 2.0
_C.DATASET.INT_SIGMA = False
_C.DATASET.WITH_CENTER = False  # (compat) must stay False
# Not in the official code: also train on images without any annotation (all targets zero: "nobody here");
# the official code, and the default, leave them out.
_C.DATASET.TRAIN_ON_EMPTY_IMAGES = False
# Not in the official code: when all decoded training images of the split fit in this many MB (4 bytes a
# pixel: RGB and ignore mask), each loader process keeps them in memory after first use (0: never).
_C.DATASET.IMAGE_CACHE_MB = 512.0
# Not in the official code: a JPEG whose compressed data is corrupt (an interrupted download, a bad sector) stops
# training and evaluation with a line naming it, where libjpeg would decode a different picture; True uses it
# as decoded (the official code's behaviour).
_C.DATASET.ACCEPT_DAMAGED_IMAGES = False
# Not in the official code: before training or evaluation reads a split, check that every image it lists is
# there with the annotated size (from the file headers: seconds for COCO's 118k, docs/training-reference.md).
# False skips it (the loader still refuses a missing or mis-sized image when it reaches it).
_C.DATASET.CHECK_IMAGES = True
# A keypoint set of your own (joint names, left/right pairs, OKS sigmas, links to draw, grouping order,
# all by name). Empty NAMES: the set registered for DATASET.DATASET (coco, crowd_pose).
_C.DATASET.KEYPOINTS = CN()
_C.DATASET.KEYPOINTS.NAMES = []
_C.DATASET.KEYPOINTS.FLIP_PAIRS = []     # [[left_x, right_x], ...]
_C.DATASET.KEYPOINTS.SIGMAS = []
_C.DATASET.KEYPOINTS.SKELETON = []       # [[a, b], ...]
_C.DATASET.KEYPOINTS.GROUPING_ORDER = []  # default: NAMES order
_C.DATASET.KEYPOINTS.UPPER_BODY = []      # top-down half-body crops: the upper body's joints (the rest: lower)
_C.DATASET.KEYPOINTS.JOINT_WEIGHTS = []   # top-down LOSS.USE_DIFFERENT_JOINTS_WEIGHT: one loss weight per joint

_C.TRAIN = CN()
_C.TRAIN.LR_FACTOR = 0.1
_C.TRAIN.LR_STEP = [200, 260]
_C.TRAIN.LR = 0.001
_C.TRAIN.OPTIMIZER = "adam"
_C.TRAIN.MOMENTUM = 0.9
_C.TRAIN.WD = 0.0001
_C.TRAIN.NESTEROV = False
_C.TRAIN.GAMMA1 = 0.99  # (compat)
_C.TRAIN.GAMMA2 = 0.0  # (compat)
_C.TRAIN.BEGIN_EPOCH = 0
_C.TRAIN.END_EPOCH = 300
_C.TRAIN.RESUME = False
_C.TRAIN.CHECKPOINT = ""
_C.TRAIN.IMAGES_PER_GPU = 12
_C.TRAIN.BATCH_SIZE_PER_GPU = 32   # top-down (pose_hrnet): person crops per GPU and step
_C.TRAIN.SHUFFLE = True
# Not in the official code:
_C.TRAIN.WARMUP_EPOCHS = 0.0     # linear learning-rate warm-up over this many epochs (fractions allowed)
_C.TRAIN.WARMUP_FACTOR = 0.001   # warm-up starts at LR * WARMUP_FACTOR
_C.TRAIN.CLIP_GRAD_NORM = 0.0    # > 0: clip the global gradient norm to this value
_C.TRAIN.MAX_ITERS_PER_EPOCH = 0  # > 0: cut epochs short (smoke tests, debugging)
_C.TRAIN.VAL_FREQ = 0            # validate every N epochs (0: never); model_best.pth: best AP (MPII: PCKh Mean)
# Memory format of the training network and images: "cpu" (channels-last when training on the CPU, where it
# makes a W32-512 step 1.33x faster with the same results up to float rounding; contiguous on CUDA, which has
# not been measured yet), "always" or "never" (contiguous, as the official code trains). See docs/training-reference.md.
_C.TRAIN.CHANNELS_LAST = "cpu"
_C.TRAIN.CPU_AUTOCAST = ""       # "bf16": bfloat16 autocast when training on the CPU ("": float32)
# Learning-rate schedule, stepped every iteration. "multistep" (official): WARMUP_EPOCHS / WARMUP_FACTOR,
# then x LR_FACTOR at each epoch of LR_STEP. "swahr" (SWAHR's code): linear from 0.1 x the rate to the rate
# over WARM_UP_EPOCH epochs, then linearly down to 0 at END_EPOCH; LR_STEP, LR_FACTOR, WARMUP_* are unused.
_C.TRAIN.LR_SCHEDULE = "multistep"
_C.TRAIN.WARM_UP_EPOCH = 3.0     # SWAHR's key and default (its files write integers; fractions allowed here)

_C.TEST = CN()
_C.TEST.IMAGES_PER_GPU = 1
_C.TEST.FLIP_TEST = True    # both kinds of network: average with the mirrored input's flipped-back heatmaps
_C.TEST.ADJUST = True
_C.TEST.REFINE = True
_C.TEST.SCALE_FACTOR = [1.0]
_C.TEST.DETECTION_THRESHOLD = 0.1
_C.TEST.TAG_THRESHOLD = 1.0
_C.TEST.USE_DETECTION_VAL = True
_C.TEST.IGNORE_TOO_MUCH = False
_C.TEST.MODEL_FILE = ""
_C.TEST.IGNORE_CENTER = True  # (compat)
_C.TEST.NMS_KERNEL = 5
_C.TEST.NMS_PADDING = 2
_C.TEST.PROJECT2IMAGE = True
# Per network output: average its heatmaps / use its tags at test time (only outputs trained for them).
_C.TEST.WITH_HEATMAPS = (True, True)
_C.TEST.WITH_AE = (True, False)
_C.TEST.LOG_PROGRESS = False  # (compat) evaluation always shows a progress bar
# Top-down (pose_hrnet) only. BATCH_SIZE_PER_GPU: person crops per forward pass. POST_PROCESS: move each joint
# a quarter heatmap pixel toward its higher neighbour, in x and in y. SHIFT_HEATMAP: with FLIP_TEST, shift the
# flipped-back heatmaps one pixel right before averaging (the mirrored input is not aligned with the input).
# The people: ground-truth boxes (USE_GT_BBOX) or the detections in COCO_BBOX_FILE with a score of at least
# IMAGE_THRE. Rescoring: a person's score is its box score times the mean score of its joints above
# IN_VIS_THRE; then OKS-NMS at OKS_THRE (SOFT_NMS: the soft variant).
_C.TEST.BATCH_SIZE_PER_GPU = 32
_C.TEST.POST_PROCESS = True
_C.TEST.SHIFT_HEATMAP = True
_C.TEST.USE_GT_BBOX = True
_C.TEST.COCO_BBOX_FILE = "data/coco/person_detection_results/COCO_val2017_detections_AP_H_56_person.json"
_C.TEST.IMAGE_THRE = 0.0
_C.TEST.IN_VIS_THRE = 0.2
_C.TEST.OKS_THRE = 0.9
_C.TEST.SOFT_NMS = False
_C.TEST.NMS_THRE = 1.0   # (compat)
_C.TEST.BBOX_THRE = 1.0  # (compat)

# (compat) the official code's debug image dumps
_C.DEBUG = CN()
_C.DEBUG.DEBUG = True
_C.DEBUG.SAVE_BATCH_IMAGES_GT = False
_C.DEBUG.SAVE_BATCH_IMAGES_PRED = False
_C.DEBUG.SAVE_HEATMAPS_GT = True
_C.DEBUG.SAVE_HEATMAPS_PRED = True
_C.DEBUG.SAVE_TAGMAPS_PRED = True

# Keys accepted for the official files' sake that do nothing here, and why.
COMPAT_KEYS = {
    "GPUS": "devices come from --device and torchrun",
    "RANK": "torchrun's environment decides the rank",
    "MULTIPROCESSING_DISTRIBUTED": "processes are started by torchrun",
    "VERBOSE": "logging is always on",
    "DATASET.DATA_FORMAT": "images are read by their file names",
    "DATASET.HYBRID_JOINTS_TYPE": "the official top-down code uses it only to name its output folder",
    "TRAIN.GAMMA1": "no optimiser here uses it",
    "TRAIN.GAMMA2": "no optimiser here uses it",
    "TEST.IGNORE_CENTER": "there are no center heatmaps",
    "TEST.LOG_PROGRESS": "evaluation always shows a progress bar",
    "TEST.NMS_THRE": "the official top-down code reads it but never uses it",
    "TEST.BBOX_THRE": "the official top-down code never reads it",
    "DEBUG.DEBUG": "the official debug image dumps are not written",
    "DEBUG.SAVE_BATCH_IMAGES_GT": "the official debug image dumps are not written",
    "DEBUG.SAVE_BATCH_IMAGES_PRED": "the official debug image dumps are not written",
    "DEBUG.SAVE_HEATMAPS_GT": "the official debug image dumps are not written",
    "DEBUG.SAVE_HEATMAPS_PRED": "the official debug image dumps are not written",
    "DEBUG.SAVE_TAGMAPS_PRED": "the official debug image dumps are not written",
}

# Keys that are a probability here and a switch in the official top-down files (deep-high-resolution-net.pytorch):
# key -> the probability its code uses for `true`; `false` loads as 0.
BOOL_AS_PROBABILITY = {
    "DATASET.FLIP": 0.5,     # JointsDataset: `if self.flip and random.random() <= 0.5`
}

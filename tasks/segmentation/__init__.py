"""Mobile DeepLabv3 semantic segmentation (V2 paper, section 6.3) on PASCAL VOC 2012 (+SBD)."""

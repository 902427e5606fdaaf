"""SSDLite object detection on COCO over any registered backbone."""

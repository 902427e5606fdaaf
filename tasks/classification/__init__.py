"""ImageNet classification over any registered backbone."""

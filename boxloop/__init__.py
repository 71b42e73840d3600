"""boxloop: active-learning bounding-box labeling on AWS Step Functions + SageMaker, and offline."""

__version__ = "0.1.0"

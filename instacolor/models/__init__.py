"""Networks: the generator backbone, InstColorization fusion and semantic conditioning."""

from instacolor.models.fusion import FusionGenerator, WeightGenerator
from instacolor.models.generator import FUSION_POINTS, ColorGenerator, GeneratorOutput
from instacolor.models.network import InstColorNet
from instacolor.models.semantic import SemanticConditioning

__all__ = [
    "FUSION_POINTS",
    "ColorGenerator",
    "FusionGenerator",
    "GeneratorOutput",
    "InstColorNet",
    "SemanticConditioning",
    "WeightGenerator",
]

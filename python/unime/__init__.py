"""unime: universal multimodal embeddings from multimodal LLMs, on a C++/LibTorch core."""

# torch must be imported first: it loads the LibTorch shared libraries unime._C links against.
import torch  # noqa: F401

from ._build import check_torch_version as _check_torch_version

_check_torch_version()

from . import _C  # noqa: E402  (after the torch check on purpose)
from . import ops  # noqa: E402
from .model import Model  # noqa: E402
from .checkpoint import load_safetensors, save_safetensors  # noqa: E402
from .tokenizer import Tokenizer  # noqa: E402
from . import images  # noqa: E402
from .images import load_image, load_images  # noqa: E402
from .encode import encode  # noqa: E402
from .inputs import SkippedInput  # noqa: E402
from .train import Trainer, TrainerConfig  # noqa: E402
from . import train  # noqa: E402
from . import eval  # noqa: E402  (unime.eval; shadows the builtin only as an attribute)
from .eval import Evaluation  # noqa: E402
from .index import Index, SearchHit  # noqa: E402

__version__ = _C.__version__
__all__ = ["Model", "encode", "SkippedInput", "Trainer", "TrainerConfig", "train", "Tokenizer", "load_safetensors",
           "save_safetensors", "ops", "images", "load_image", "load_images", "eval", "Evaluation", "Index", "SearchHit",
           "__version__"]

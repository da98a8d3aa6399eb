"""ExecuTorch's extension/llm/modules package imports torchtune at import time (for its torchtune-model helpers),
and gemma4_31b's MLX source transformations import a sibling module (turboquant) through that package. torchtune
0.6.1, the last release, does not import with torchao 0.18 (torchao.dtypes.nf4tensor is gone), and the Gemma 4 MLX
export never touches torchtune's classes. These placeholders let the package import; any use of them raises."""
import sys
import types

import torch.nn as nn


class _Absent(nn.Module):
    def __init__(self, *args, **kwargs):
        raise RuntimeError("torchtune is not installed (a placeholder was imported, not used)")


def install() -> None:
    names = ["torchtune", "torchtune.modules", "torchtune.modules.attention", "torchtune.modules.attention_utils",
             "torchtune.modules.kv_cache"]
    if "torchtune" in sys.modules:
        return
    for name in names:
        sys.modules[name] = types.ModuleType(name)
    sys.modules["torchtune.modules.attention"].MultiHeadAttention = _Absent
    sys.modules["torchtune.modules.attention_utils"]._MaskType = object
    sys.modules["torchtune.modules.attention_utils"]._sdpa_or_flex_attention = lambda *a, **k: _Absent()
    sys.modules["torchtune.modules.kv_cache"].KVCache = _Absent
    sys.modules["torchtune"].modules = sys.modules["torchtune.modules"]
    for leaf in ("attention", "attention_utils", "kv_cache"):
        setattr(sys.modules["torchtune.modules"], leaf, sys.modules[f"torchtune.modules.{leaf}"])

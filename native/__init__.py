"""Native layer: direct access to llama.cpp below llama-cpp-python's high-level API.

Installed as ``nacrith.native`` (see pyproject.toml's package-dir).
"""

from .llama import BACKEND, GGML_TYPE_F16, GGML_TYPE_Q8_0, LlamaContext, LlamaModel, NativeError, system_info

__all__ = ["BACKEND", "GGML_TYPE_F16", "GGML_TYPE_Q8_0", "LlamaContext", "LlamaModel", "NativeError", "system_info"]

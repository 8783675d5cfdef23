"""A container's volume may cover the image (here: the virtualenv and the source tree an editable install runs
from): deploy/'s config daemon mounts an emptyDir on /tmp, and a fresh clone under /tmp then made every container
exit 127. The kubelet keeps the image visible on top of the container's volumes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from vdpa_operator.sim.kubelet.mounts import Mount, entering
from vdpa_operator.sim.kubelet.settings import KubeletSettings

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mount namespaces need root")

IMPORTS = [sys.executable, "-c", "import vdpa_operator.cli; print('image visible')"]


def settings() -> KubeletSettings:
    return KubeletSettings(node_name="n", kubeconfig=Path("k"), root=Path("/nonexistent"), node_netns="n")


def run(mounts: list[Mount], keep: tuple[Path, ...]) -> subprocess.CompletedProcess[str]:
    argv = entering("/proc/self/ns/net", mounts, IMPORTS, keep_visible=keep)
    return subprocess.run(argv, capture_output=True, text=True, timeout=30)


def test_an_empty_dir_over_the_images_parent_keeps_the_image_visible(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    image = settings().image_paths
    cover = Mount(empty, str(image[0].parent))  # an emptyDir right over the virtualenv's directory
    assert "image visible" in run([cover], image).stdout
    hidden = run([cover], ())
    assert hidden.returncode != 0, "without keeping it, the volume hides the image (the bug this guards)"
    assert not list(Path("/dev/shm").glob(".vdpa-sim-image-*")), "the staging directories are removed"

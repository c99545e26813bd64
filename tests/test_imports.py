"""Import boundaries that keep the command line quick: what must not be loaded before it is needed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def loaded_after(code: str) -> set[str]:
    """The top-level modules loaded in a fresh interpreter after ``code`` runs."""
    probe = f"import sys\n{code}\nprint(' '.join(sorted({{m.split('.')[0] for m in sys.modules}})))"
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr
    return set(result.stdout.split())


def test_print_config_does_not_load_opencv(tmp_path: Path) -> None:
    config = tmp_path / "moodcast.toml"
    config.write_text("[mqtt]\nenabled = false\n")
    loaded = loaded_after(
        f"from device.__main__ import main\nassert main(['--config', {str(config)!r}, '--print-config']) == 0"
    )
    assert "cv2" not in loaded and "tensorflow" not in loaded


def test_check_config_loads_the_model_through_the_runtime_never_tensorflow(tmp_path: Path) -> None:
    """--check-config loads the model as the daemon does (a broken TFLite runtime fails it), without TF."""
    config = tmp_path / "moodcast.toml"
    config.write_text("[mqtt]\nenabled = false\n")
    loaded = loaded_after(
        f"from device.__main__ import main\nassert main(['--config', {str(config)!r}, '--check-config']) == 0"
    )
    assert "tensorflow" not in loaded and "ai_edge_litert" in loaded


def test_convert_answers_a_bad_argument_without_tensorflow(tmp_path: Path) -> None:
    code = (
        "from convert.__main__ import main\n"
        f"assert main(['--model', {str(tmp_path / 'missing.keras')!r}]) == 2"
    )
    loaded = loaded_after(code)
    assert "tensorflow" not in loaded and "keras" not in loaded

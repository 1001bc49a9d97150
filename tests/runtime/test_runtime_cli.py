import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def runtime(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "runtime", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)


def test_models_lists_the_bundled_default() -> None:
    out = runtime("models")
    assert out.returncode == 0
    assert "SmolLM2-135M-Instruct" in out.stdout and "yes" in out.stdout


def test_generate_with_and_without_a_model_name() -> None:
    out = runtime("generate", "The sky is", "--max-tokens", "6", "--raw", "--temp", "0")
    assert out.returncode == 0 and out.stdout.strip()
    named = runtime("generate", "SmolLM2-135M-Instruct", "The sky is", "--max-tokens", "6", "--raw", "--temp", "0")
    assert named.stdout == out.stdout


def test_bad_model_is_a_one_line_error_not_a_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"\x00" * 64)
    out = runtime("generate", str(bad), "hi")
    assert out.returncode == 1
    assert "is not a GGUF file" in out.stderr and "Traceback" not in out.stderr

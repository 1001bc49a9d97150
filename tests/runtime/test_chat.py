import io
import subprocess
import sys
from pathlib import Path

from runtime.chat import chat_loop
from runtime.model import GPT4All

ROOT = Path(__file__).resolve().parents[2]


def test_scripted_session_streams_resets_and_exits(model: GPT4All) -> None:
    out = io.StringIO()
    turns = chat_loop(model, io.StringIO("Hello!\n\n/reset\nName a color.\n/exit\nnever read\n"), out,
                      max_tokens=16, temp=0.0)
    transcript = out.getvalue()
    assert turns == 2
    assert transcript.startswith("SmolLM2-135M-Instruct — Type a message.")
    assert "(new conversation)" in transcript
    assert transcript.count("> ") == 5  # Hello, blank, /reset, Name a color, /exit
    # Input is not echoed here, so each streamed answer follows its "> " prompt on the same line.
    answers = [line[2:] for line in transcript.splitlines() if line.startswith("> ") and line[2:].strip() and "(new conversation)" not in line]
    assert len(answers) == 2


def test_terminal_chat_command_end_to_end() -> None:
    proc = subprocess.run([sys.executable, "-m", "runtime", "chat", "--max-tokens", "8", "--threads", "2"],
                          input="Say hi\n/exit\n", capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("SmolLM2-135M-Instruct")
    assert lines[1].startswith("> ") and len(lines[1]) > 2  # the streamed answer follows the prompt marker

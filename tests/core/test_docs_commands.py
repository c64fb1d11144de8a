"""Every `au …` command the README and docs/ show exists, with the options they give it
(checked against the CLI's own argparse tree), and the generated reference material —
completion scripts and the manual page — covers every command."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from activeupgrade.cli.docs import bash_script, command_tree, fish_script, manpage, walk, zsh_script

TOP = Path(__file__).resolve().parents[2]
DOCS = [TOP / "README.md", *sorted((TOP / "docs").glob("*.md"))]
INLINE = re.compile(r"`(au [^`]+)`")


def commands_in(text: str) -> list[str]:
    found = [m.group(1) for m in INLINE.finditer(text)]
    in_block = False
    for line in text.splitlines():
        if line.startswith("```"):
            in_block = not in_block
            continue
        stripped = line.strip()
        if in_block and stripped.startswith("au "):
            found.append(stripped.split("  #")[0].split(" # ")[0])
    return found


def check(command: str) -> str:
    """"" when ``command`` names an existing command with existing options, else why not."""
    try:
        words = shlex.split(command.replace("|", " "))
    except ValueError:
        words = command.split()
    node = command_tree()
    for word in words[1:]:
        if word == "--":
            break
        if word.startswith("-"):
            name = word.split("=", 1)[0]
            known = {s for a in node.options for s in a.option_strings}
            known |= {"-h", "--help", "--version", "--debug"}
            if name not in known and not re.fullmatch(r"-[A-Z.]+", name):
                return f"{' '.join(node.path)} has no option {name}"
            continue
        child = next((c for c in node.children if c.path[-1] == word), None)
        if child is not None:
            node = child
        elif node.children and not node.positionals and word.islower() and word.isalpha():
            return f"{' '.join(node.path)} has no command {word}"
    return ""


def test_every_documented_command_exists() -> None:
    problems = []
    for doc in DOCS:
        for command in commands_in(doc.read_text()):
            why = check(command)
            if why:
                problems.append(f"{doc.name}: `{command}`: {why}")
    assert not problems, "\n".join(problems)


def test_the_checker_catches_what_does_not_exist() -> None:
    assert check("au log --tail 5 --since 10m -f") == ""
    assert check("au log --oldest 5") == "au log has no option --oldest"
    assert check("au volume adopt /x --role system") == ""
    assert check("au volume frobnicate") == "au volume has no command frobnicate"


def test_completion_and_manual_page_cover_every_command() -> None:
    root = command_tree()
    scripts = (bash_script(root), zsh_script(root), fish_script(root),
               manpage(root).replace("\\-", "-"))
    for node in walk(root):
        for script in scripts:
            assert node.path[-1] in script, (node.path, script[:80])


@pytest.mark.parametrize("shell,args", [("bash", ["-n"]), ("zsh", ["-n"]),
                                        ("fish", ["--no-execute"])])
def test_completion_scripts_parse(shell: str, args: list[str], tmp_path: Path) -> None:
    if shutil.which(shell) is None:
        pytest.skip(f"{shell} is not installed (scripts/bootstrap.sh --test installs it)")
    root = command_tree()
    script = tmp_path / f"au.{shell}"
    script.write_text({"bash": bash_script, "zsh": zsh_script, "fish": fish_script}[shell](root))
    done = subprocess.run([shell, *args, str(script)], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr


def test_bash_completion_completes_commands_options_and_choices(tmp_path: Path) -> None:
    script = tmp_path / "au.bash"
    script.write_text(bash_script(command_tree()))

    def complete(*words: str) -> list[str]:
        arr = " ".join(shlex.quote(w) for w in words)
        done = subprocess.run(["bash", "-c", f"source {script}; COMP_WORDS=({arr}); "
                               f"COMP_CWORD={len(words) - 1}; _au; "
                               "printf '%s\\n' \"${COMPREPLY[@]}\""],
                              capture_output=True, text=True, timeout=60, check=True)
        return done.stdout.split()

    assert complete("au", "vol") == ["volume"]
    assert complete("au", "volume", "adopt", "/x", "--role", "") == ["system", "data"]
    assert "--tail" in complete("au", "log", "--t")
    assert complete("au", "completion", "") == ["bash", "zsh", "fish"]


def test_manual_page_renders(tmp_path: Path) -> None:
    if shutil.which("man") is None:
        pytest.skip("man is not installed (scripts/bootstrap.sh --test installs man-db)")
    page = tmp_path / "au.1"
    page.write_text(manpage(command_tree(), "2025-01-01"))
    done = subprocess.run(["man", "-l", str(page)], capture_output=True, text=True,
                          timeout=60, env={"MANPAGER": "cat", "PATH": "/usr/bin:/bin",
                                           "LANG": "C.UTF-8", "COLUMNS": "100"})
    assert done.returncode == 0, done.stderr
    text = done.stdout
    for expected in ("au volume adopt", "--since", "EXIT STATUS", "ServiceError", "AU_HOME"):
        assert expected in text.replace("\u2010", "-"), expected

"""Prompt files per language, and `say:` texts synthesized with espeak-ng + sox.

A prompt name resolves to ivr_prompts/<language>/<name>.wav, else ivr_prompts/<name>.wav
(language-neutral, such as hold music). Spoken texts become 8 kHz mono 16-bit WAVs cached
under var/ by a hash of (language, text): the first call pays for synthesis, later calls play
the file.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
import tempfile
from pathlib import Path

from flexvoice.flows.base import StepFailed
from flexvoice.flows.validate import prompt_file

# espeak-ng voice per call language; Belgian French where espeak has it.
VOICES = {"nl": "nl", "fr": "fr-be", "en": "en-gb", "de": "de"}
SOX_FORMAT = ["-r", "8000", "-c", "1", "-b", "16", "-e", "signed-integer"]


def tts_commands(text: str, language: str, raw: Path, out: Path) -> list[list[str]]:
    voice = VOICES.get(language, language)
    return [
        ["espeak-ng", "-v", voice, "-s", "150", "-w", str(raw), text],
        ["sox", "-D", str(raw), *SOX_FORMAT, str(out)],
    ]


def synthesize(text: str, language: str, out: Path) -> None:
    """Speak `text` into `out` (8 kHz mono 16-bit WAV); raise OSError/CalledProcessError."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="flexvoice-tts-") as tmp:
        raw, part = Path(tmp) / "raw.wav", Path(tmp) / "out.wav"
        for cmd in tts_commands(text, language, raw, part):
            subprocess.run(cmd, check=True, capture_output=True, timeout=60)
        os.replace(part, out)  # readers never see half a file


class PromptResolver:
    def __init__(self, prompts_dir: Path, cache_dir: Path, *, synthesize: bool = True):
        self.prompts_dir = prompts_dir
        self.cache_dir = cache_dir
        self.synthesize = synthesize  # False in `flows simulate`: name the file, don't make it

    def prompt(self, name: str, language: str) -> Path:
        path = prompt_file(self.prompts_dir, name, language)
        if path is None:
            raise StepFailed(
                f"prompt '{name}' is missing for language {language} in {self.prompts_dir}"
            )
        return path

    def cached_say(self, text: str, language: str) -> Path:
        digest = hashlib.sha256(f"{language}\0{text}".encode()).hexdigest()[:32]
        return self.cache_dir / language / f"{digest}.wav"

    async def say(self, text: str, language: str) -> Path:
        path = self.cached_say(text, language)
        if path.is_file() or not self.synthesize:
            return path
        try:
            await asyncio.to_thread(synthesize, text, language, path)
        except (OSError, subprocess.SubprocessError) as exc:
            raise StepFailed(f"cannot synthesize speech ({language}): {exc}") from None
        return path

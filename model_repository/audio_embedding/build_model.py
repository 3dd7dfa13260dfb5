"""Write the audio descriptor graph where this model expects it (``1/audio.onnx``).

``vdup models install`` does the same for the whole repository; this script is the one-model
shortcut: ``python model_repository/audio_embedding/build_model.py [--out PATH]``.
"""

import argparse
from pathlib import Path

from vdup.features.audio_model import build_audio_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "1" / "audio.onnx")
    args = parser.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    data = build_audio_model()
    args.out.write_bytes(data)
    print(f"wrote {args.out} ({len(data)} bytes)")


if __name__ == "__main__":
    main()

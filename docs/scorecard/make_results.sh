#!/bin/sh
# Regenerate the results shown in the book (docs/trust.md, "Which map to trust"):
# the scorecard of both shipped models on 200 shipped test images and the cascading
# sanity check on 50, for every method in the registry at the time of running.
#
#   sh docs/scorecard/make_results.sh            # from the repository root, minicnn installed
#
# Writes into docs/scorecard/: scorecard_<model>.md (the table, every metric of
# minicnn.metrics.scorecard.METRICS), .json and the three figures (curves, maps,
# trust); sanity_<model>.md (the tables), .json, sanity_<model>.png and
# sanity_<model>_curves.png. Progress and timings go to the terminal (stderr).
# The two large grids of maps per model are then kept as JPEG (quality 85, a
# fifth of the PNG's size); the curves and the trust panels stay PNG.
set -eu
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-python3}
out=docs/scorecard
for model in vgg_cifar10 resnet20_cifar10; do
    $PYTHON -m minicnn.commands.cli scorecard --model "$model" --images 200 --seed 0 \
        --json "$out/scorecard_$model.json" --out-dir "$out" --force > "$out/scorecard_$model.md"
    $PYTHON -m minicnn.commands.cli sanity --model "$model" --images 50 --mode cascading --seed 0 \
        --json "$out/sanity_$model.json" --out "$out/sanity_$model.png" --force > "$out/sanity_$model.md"
done
$PYTHON - "$out" <<'EOF'
import sys
from pathlib import Path
from PIL import Image
for png in sorted(Path(sys.argv[1]).glob("*.png")):
    if png.stem.startswith("sanity_") and not png.stem.endswith("_curves") or png.stem.endswith("_maps"):
        Image.open(png).convert("RGB").save(png.with_suffix(".jpg"), quality=85, optimize=True)
        png.unlink()
        for md in Path(sys.argv[1]).glob("*.md"):       # the tables name the figures they wrote
            md.write_text(md.read_text().replace(png.name, png.with_suffix(".jpg").name))
EOF

"""Mutants of the runs in chunks on a Dask cluster: merge order, seeds per image, the cache's keys and loads.

Each is one small, realistic mistake in the code that makes a chunked run
equal to the serial one (``minicnn/metrics/seeds.py``, ``scoring.py``,
``distributed.py``, ``road.py``, ``baselines.py``, ``runs.py``) or that keeps
finished chunks (``minicnn/util/chunkcache.py``), run against the test files
that must kill it (the chunk tests run without Dask; the cluster tests need
the distributed extra and are skipped without it). Run with

    python tests/mutation/run_mutations.py -k dask.
"""

from run_mutations import Mutant

CHUNKS = ("tests/metrics/test_metrics_chunks.py",)
CLUSTER = ("tests/metrics/test_metrics_chunks.py", "tests/metrics/test_distributed.py")
DATA = ("tests/metrics/test_metrics_data.py",)


def _m(name, path, old, new, what, tests=CHUNKS, equivalent=""):
    return Mutant(f"dask.{name}", f"minicnn/{path}", old, new, what, equivalent=equivalent, tests=tests)


MUTANTS = [
    # ------------------------------------------------------------ merge order
    _m("merge.newest-chunk-first", "metrics/distributed.py",
       "        self.parts.append(have)\n", "        self.parts.insert(0, have)\n",
       "the chunks merged newest first, not in image order"),
    _m("merge.completion-order", "util/cluster.py",
       "                i = index[future.key]\n", "                i = sum(r is not None for r in results)\n",
       "results stored in the order the workers finish, not the order of the tasks", tests=CLUSTER),
    _m("merge.mosaics-as-images", "metrics/scorecard.py",
       "        parts = [p[key] for p in mosaic_parts]\n", "        parts = [p[key] for p in mosaic_parts[::-1]]\n",
       "the mosaics' chunks joined in reverse"),
    # ------------------------------------------------------------ seeds per image, never per chunk or worker
    _m("seed.stream-by-row-in-chunk", "metrics/seeds.py",
       "rng.bit_generator.advance(int(i) * per_image)", "rng.bit_generator.advance(row * per_image)",
       "an image's uniform draws by its place in the chunk (a seed per worker), not by its number"),
    _m("seed.road-noise-per-chunk", "metrics/road.py",
       "rng = [image_rng(check_seed(seed), i) for i in ids]", "rng = [image_rng(check_seed(seed), i) for i in range(n)]",
       "ROAD's noise by the image's place in the chunk"),
    _m("seed.road-noise-one-generator", "metrics/road.py",
       "rng = [image_rng(check_seed(seed), i) for i in ids]", "rng = np.random.default_rng(check_seed(seed))",
       "ROAD's noise from one generator for the batch (the old, batch-dependent way)"),
    _m("seed.scoring-local-ids", "metrics/scoring.py",
       "deletion = deletion_curve(score, x, pm, steps=steps, seed=seed, ends=(p_x, p_zero), ids=ids)",
       "deletion = deletion_curve(score, x, pm, steps=steps, seed=seed, ends=(p_x, p_zero))",
       "deletion's tie-breaking numbered within the chunk"),
    _m("seed.baseline-local-ids", "metrics/scoring.py",
       "baseline_maps(x, seed, ids).items() if b in keys})\n    for b in BASELINES:",
       "baseline_maps(x, seed).items() if b in keys})\n    for b in BASELINES:",
       "the random baseline numbered within the chunk"),
    _m("seed.method-seed-per-chunk", "metrics/runs.py",
       'options = {"seed": image_seed(seed, ids[start])} if per_image else None',
       'options = {"seed": image_seed(seed, start)} if per_image else None',
       "SmoothGrad's seed from the image's place in the chunk"),
    _m("seed.method-batched", "metrics/runs.py",
       "    if per_image:\n        chunk = 1\n", "",
       "a seeded method run on the whole chunk, its noise drawn for the batch"),
    # ------------------------------------------------------------ the cache's keys and loads
    _m("key.no-settings", "metrics/distributed.py",
       'common = {"model": digest, "settings": work.settings}', 'common = {"model": digest}',
       "the cache key without the settings (another seed reads the old chunks)"),
    _m("key.no-model", "metrics/distributed.py",
       'common = {"model": digest, "settings": work.settings}', 'common = {"settings": work.settings}',
       "the cache key without the weights' digest (other weights read the old chunks)"),
    _m("key.no-ids", "metrics/distributed.py",
       'images.add({**common, "kind": "scorecard images", "ids": ids.tolist(), "examples": examples,',
       'images.add({**common, "kind": "scorecard images", "examples": examples,',
       "the cache key without the image ids (the same images at other numbers, other seeds, read the old values)",
       tests=DATA),
    _m("key.no-inputs", "metrics/distributed.py",
       '                    "inputs": array_digest(work.x[ids])}', "                    }",
       "the scorecard's cache key without its inputs' digest (other images under the same numbers read old values)",
       tests=DATA),
    _m("key.sanity-no-inputs", "metrics/distributed.py",
       '                   "inputs": array_digest(x[ids])}', "                   }",
       "the sanity check's cache key without its inputs' digest", tests=DATA),
    _m("key.no-method", "metrics/distributed.py",
       'got = self.cache.get({**base, "method": k})', 'got = self.cache.get({**base, "method": keys[0]})',
       "the cache looked up under the first method for every method"),
    _m("key.no-version", "util/chunkcache.py",
       "{**key, VERSION_FIELD: package_version()}", "dict(key)",
       "the cache key without the package version"),
    _m("load.key-not-compared", "util/chunkcache.py",
       "if stored is None or stored.shape != () or str(stored) != canonical(key):",
       "if stored is None or stored.shape != ():",
       "an entry read without comparing its stored key (a renamed file answers another key)"),
    _m("load.pickles-allowed", "util/chunkcache.py",
       "np.load(io.BytesIO(data), allow_pickle=False)", "np.load(io.BytesIO(data), allow_pickle=True)",
       "cache entries loaded with pickles allowed"),
    _m("load.unbounded", "util/chunkcache.py",
       'data = read_regular_file(path, MAX_ENTRY_BYTES, "cache entry")', 'data = path.read_bytes()',
       "a cache entry read without the size bound or the regular-file check"),
    _m("load.compressed-unpacked", "util/chunkcache.py",
       "    return (all(m.compress_type == zipfile.ZIP_STORED for m in members)\n",
       "    return (True\n",
       "a cache entry's compressed members unpacked whatever they hold (a zip bomb)"),
    _m("worker.digest-not-checked", "models/worker.py",
       "        if found != digest:\n", "        if False:\n",
       "a worker computing with weights other than the client's"),
]

"""Mutants of the explorer's class visualisation and attack requests (minicnn/server/synth.py and their guard).

One realistic mistake each: a cap off by one or missing, a cache that forgets the
wrong answers or mixes settings, work that no longer counts its steps (so neither
the deadline nor a client that leaves can stop it), pixels rounded the wrong way,
a body accepted where none belongs. tests/app/test_server_synth.py kills them.

    python tests/mutation/run_mutations.py -k explorer-synth
"""

from run_mutations import Mutant

SYNTH_TESTS = "tests/app/test_server_synth.py"


def m(name, path, old, new, what, *tests, equivalent=""):
    return Mutant(f"explorer-synth.{name}", f"minicnn/{path}", old, new, what, equivalent=equivalent,
                  tests=tests or (SYNTH_TESTS,))


MUTANTS = [
    # ------------------------------------------------------------ caps, checked before the work
    m("range-off-by-one", "server/synth.py",
      "    if not low <= value <= high:\n", "    if not low <= value < high:\n",
      "the largest allowed value (512 visualisation steps, 100 PGD steps) refused"),
    m("visualise-steps-cap-of-the-library", "server/synth.py",
      "MAX_VISUALISE_STEPS = 512", "MAX_VISUALISE_STEPS = 2048",
      "the server lets a request take the library's 2048 steps"),
    m("attack-steps-cap-of-the-library", "server/synth.py",
      "MAX_ATTACK_STEPS = 100", "MAX_ATTACK_STEPS = adversarial.MAX_STEPS",
      "the server lets a request take the command line's 1000 PGD steps"),
    m("integer-takes-any-digits", "server/synth.py",
      "if not text.isascii() or not text.isdigit() or len(text) > 20:", "if not text.isdigit():",
      "Unicode digits and 30-digit numbers reach int() (an Arabic-Indic 3 taken for 3)"),
    m("unknown-parameters-ignored", "server/synth.py",
      "    if unknown:\n        extra", "    if False:\n        extra",
      "a misspelt query parameter silently ignored"),
    m("epsilon-as-a-float", "server/synth.py",
      "epsilon = adversarial.parse_epsilon(query.get(\"epsilon\") or ATTACK_DEFAULTS[\"epsilon\"])",
      "epsilon = float(query.get(\"epsilon\") or 8 / 255)",
      "epsilon read with float(): 8/255 is a 500 and 2 is accepted"),
    m("method-options-checked-after-the-attack", "server/synth.py",
      "        api.explain_options(options)                         # converted and capped now, before the work\n",
      "        pass\n",
      "the methods' options checked only by /api/explain, after the attack's work"),
    m("method-options-keep-their-prefix", "server/synth.py",
      "options = {k[len(OPTION_PREFIX):]: v for k, v in query.items() if k.startswith(OPTION_PREFIX)}",
      "options = {k: v for k, v in query.items() if k.startswith(OPTION_PREFIX)}",
      "explain.steps passed on as 'explain.steps' (an unknown option)"),
    m("layer-dropped", "server/synth.py",
      "        maps_query[\"layer\"] = query[\"layer\"]\n", "        pass\n",
      "the layer chosen on the page never reaches the maps (nor its check)"),
    m("explain-target-allowed", "server/synth.py",
      "        if k in api.EXPLAIN_PARAMS:\n", "        if k in (\"model\", \"method\", \"layer\"):\n",
      "explain.target accepted, silently overridden by the attack's classes"),
    m("body-accepted-by-visualize", "server/guards.py",
      "if self.headers.get(\"Transfer-Encoding\") or (self.content_length() or 0) > 0:",
      "if self.headers.get(\"Transfer-Encoding\"):",
      "a body sent to /api/visualize accepted and left unread"),
    # ------------------------------------------------------------ the cache
    m("cache-key-without-seed", "server/synth.py",
      "key = (name, k, param, steps, seed)", "key = (name, k, param, steps)",
      "another seed answered with the cached image of the first"),
    m("cache-forgets-the-newest", "server/synth.py",
      "self._answers.popitem(last=False)", "self._answers.popitem()",
      "the answer just computed is the one forgotten"),
    m("cache-use-not-recorded", "server/synth.py",
      "            if answer is not None:\n                self._answers.move_to_end(key)\n", "",
      "a visualisation viewed again is forgotten as if it were the oldest"),
    m("cache-unbounded", "server/synth.py",
      "while len(self._answers) > self.kept:", "while len(self._answers) > 10 * self.kept:",
      "the cache keeps ten times what it says"),
    m("server-without-cache", "server/app.py",
      "synth.visualize(self.server.store, query, self.server.visualisations,",
      "synth.visualize(self.server.store, query, None,",
      "the server never keeps a visualisation: a second view recomputes it"),
    # ------------------------------------------------------------ bounded work: the steps are counted
    m("visualise-steps-not-counted", "server/synth.py",
      "seed=seed, progress=progress)", "seed=seed)",
      "the ascent runs to its end past the deadline and after the client has gone"),
    m("pgd-steps-not-counted", "server/synth.py",
      "target=s[\"target\"], progress=progress)", "target=s[\"target\"])",
      "PGD runs to its end past the deadline and after the client has gone"),
    # ------------------------------------------------------------ the images and the classes
    m("pixels-truncated", "server/synth.py",
      "return np.round(np.clip(pixels, 0, 1) * 255).astype(np.uint8)",
      "return (np.clip(pixels, 0, 1) * 255).astype(np.uint8)",
      "pixels truncated to 8 bits instead of rounded (not the PNG minicnn visualize and attack write)"),
    m("attack-on-the-normalised-input", "server/synth.py",
      "pixels = preprocess(image, {**prep, \"mean\": [0, 0, 0], \"std\": [1, 1, 1]})",
      "pixels = preprocess(image, prep)",
      "the attack given the normalised network input instead of pixels in [0, 1]"),
    m("fooled-means-unchanged", "server/synth.py",
      "else adversarial_class != true_class", "else adversarial_class == true_class",
      "an untargeted attack called successful when the class stayed"),
    m("adversarial-maps-for-the-true-class", "server/synth.py",
      "api.explain(store, {**s[\"maps_query\"], \"target\": str(adversarial_class)}",
      "api.explain(store, {**s[\"maps_query\"], \"target\": str(true_class)}",
      "the adversarial side explains the true class again"),
]

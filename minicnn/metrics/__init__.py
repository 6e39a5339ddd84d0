"""Which explanation can be trusted? Sanity checks, faithfulness and localisation, in NumPy.

One concept per module, each a short function that reads like its definition:

| module           | what                                                                  |
|------------------|-----------------------------------------------------------------------|
| ``similarity``   | Spearman (signed, of absolute values), SSIM (Wang et al. 2004)         |
| ``maps``         | every method's map as one number per input pixel (the documented rule) |
| ``randomisation``| PyTorch's default initialisation per layer; cascading / independent steps |
| ``deletion``     | deletion and insertion curves and their areas (Petsiuk et al. 2018)    |
| ``road``         | ROAD with noisy linear imputation (Rong et al. 2022)                   |
| ``agreement``    | rank correlation with the occlusion map (Selvaraju et al. 2019)        |
| ``localisation`` | 2x2 mosaics, pointing game, energy-based pointing game                 |
| ``confidence``   | Average Drop, Increase in Confidence (Chattopadhyay et al. 2018)       |
| ``perturbation`` | faithfulness correlation (Bhatt et al. 2020), infidelity (Yeh et al.)  |
| ``complexity``   | sparseness (the Gini index), complexity (the entropy) of a map         |
| ``robustness``   | max-sensitivity: the map's largest change under small input noise      |
| ``random_logit`` | the random-logit test (Sixt et al. 2020): the map for another class    |
| ``trust``        | those columns of the scorecard: one set of draws, capped settings      |
| ``baselines``    | a seeded random map, a centred Gaussian, the image's edges             |
| ``cost``         | forward and backward passes, counted by wrapping the model             |
| ``intervals``    | the mean and its 95% confidence interval                               |
| ``runs``         | every registered method run on a batch: chunked, counted, timed        |
| ``seeds``        | randomness per image, whatever the chunk the image is computed in      |
| ``scoring``      | the scorecard's work on one chunk of images or mosaics, per image      |
| ``comparison``   | the sanity check's work on one chunk of images, per image              |
| ``distributed``  | both in chunks on a Dask cluster, with a cache of finished chunks      |
| ``sanity``       | ``minicnn sanity``: the randomisation tests of Adebayo et al. (2018)    |
| ``scorecard``    | ``minicnn scorecard``: every metric, every method, against baselines   |

    import minicnn
    from minicnn.metrics import sanity, scorecard
    card = scorecard(minicnn.load("resnet20_cifar10"), images=200)
    print(card.table())
"""

from .sanity import Sanity, sanity
from .scorecard import Scorecard, scorecard

__all__ = ["Sanity", "Scorecard", "sanity", "scorecard"]

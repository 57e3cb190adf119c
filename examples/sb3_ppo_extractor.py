"""Train Stable-Baselines3 PPO on the extractor of the selection view (synthetic-32k by default).

The other roles follow the similarity heuristics. Prints accuracy and the
extractor's local reward on the validation questions before and after training
(mean over ``--seeds``) and saves a learning curve::

    .venv/bin/python examples/sb3_ppo_extractor.py --seeds 0 1 2
    .venv/bin/python examples/sb3_ppo_extractor.py --help

See examples/sb3_common.py for what is run, and docs/selection_view.md for results.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sb3_common import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main("extractor"))

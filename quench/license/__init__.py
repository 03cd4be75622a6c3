"""License inheritance: detect, walk the base_model chain, apply the recipe's policy.

kb.yaml (data) says what each license allows and requires; detect.py reads a checkpoint's
card and files; inherit.py walks its ancestors; policy.py turns both into a cited verdict;
outputs.py writes LICENSE and NOTICE. The `license` stage and `quench validate` use assess().
"""

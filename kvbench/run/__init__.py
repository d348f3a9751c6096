"""run: the runner on top of everything, behind ``python -m kvbench``.

Owns the app (``app``: validate, load, enumerate points, measure, write rows), the console
(``console``), run folders (``folder_names``, ``folders``, and ``paths``: results_dir, exp_name
and tier.dir checked before anything is written) and the launchers' GPU slots
(``gpu_slot``).

Imports: any part. Nothing imports it but ``kvbench.__main__``.
"""

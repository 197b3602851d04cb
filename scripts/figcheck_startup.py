# An IPython startup file (CI copies it into $IPYTHONDIR/profile_default/startup/): with DOPATUT_FIGCHECK set to a
# file, every figure a notebook's kernel renders is checked for overlapping text and legends over data first
# (dopatut.course.figcheck), and what is found is appended there; scripts/check_figures.py then fails on it.
import os

if os.environ.get("DOPATUT_FIGCHECK"):
    from dopatut.course.figcheck import watch

    watch(os.environ["DOPATUT_FIGCHECK"])

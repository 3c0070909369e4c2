"""nbgrader's configuration for the meshsim exercises; this folder is the course root.

    cd notebooks/exercises
    nbgrader generate_assignment '*' --force --no-db   # source/<id>/ -> release/<id>/ (what `make exercises` does)

The gradebook (only needed for nbgrader's own collect/autograde workflow) is
``gradebook.db`` here, git-ignored; set NBGRADER_DB_URL to put it elsewhere
(e.g. ``sqlite:////tmp/meshsim-gradebook.db``).  See docs/teaching.md.
"""

import os

c = get_config()  # noqa: F821 (defined by traitlets when it loads this file)

_root = os.path.dirname(os.path.abspath(__file__))
c.CourseDirectory.root = _root
c.CourseDirectory.source_directory = "source"
c.CourseDirectory.release_directory = "release"
c.CourseDirectory.db_url = os.environ.get("NBGRADER_DB_URL", "sqlite:///" + os.path.join(_root, "gradebook.db"))

# a test cell may simulate for a while on a slow machine (each source notebook runs in < 40 s in all)
c.Execute.timeout = 120

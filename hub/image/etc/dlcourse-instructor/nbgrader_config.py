"""nbgrader settings for the course's instructors only (JUPYTER_CONFIG_PATH, set by the hub).

The formgrader runs in the instructor's server, whose folder is their home, not the
course: it needs the course directory, the instructor's clone of the course repository
(~/dlcourse unless the hub sets DLCOURSE_COURSE_DIR). The clone's own nbgrader_config.py
(source folder solutions/, release folder assignments/) is loaded from there, and its
relative paths are made absolute, because the formgrader does not run inside the clone.
"""
import os
from pathlib import Path

c = get_config()  # noqa: F821  (provided by nbgrader when it loads this file)

course = Path(os.path.expanduser(os.environ.get("DLCOURSE_COURSE_DIR", "~/dlcourse")))
if (course / "nbgrader_config.py").is_file():
    load_subconfig(str(course / "nbgrader_config.py"))  # noqa: F821
c.CourseDirectory.root = str(course)
c.CourseDirectory.db_url = f"sqlite:///{course / 'gradebook.db'}"

"""nbgrader settings for every user of the course's JupyterHub (part of the users' image).

The exchange is the folder all users share (students submit into it, the instructor
releases and collects through it); the course id names the course inside it. The hub
passes both to every single-user server (hub/jupyterhub_config.py). Submissions go in
through the course's submit step, which keeps each one to its student and the
instructors' group instead of nbgrader's 0777 folder (autograder/hub_submit.py).
"""
import os

c = get_config()  # noqa: F821  (provided by nbgrader when it loads this file)

c.Exchange.root = os.environ.get("DLCOURSE_EXCHANGE", "/srv/nbgrader/exchange")
c.CourseDirectory.course_id = os.environ.get("DLCOURSE_COURSE_ID", "dlcourse")
c.ExchangeFactory.submit = "autograder.hub_submit.PrivateSubmit"

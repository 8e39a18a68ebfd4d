"""nbgrader's submit step as the course's hub configures it: a submission that only its
student and the instructors can open.

Stock nbgrader leaves each submission folder in the exchange's `inbound/` mode 0777 and its
files 0644, so that the instructor may delete them later: any student who learnt a folder's
name could read a classmate's notebook and submission secret, or change the notebook. On
the course's hub `inbound/` is setgid in the instructors' group (hub/jupyterhub_config.py's
`ensure_exchange`), so a submission folder belongs to that group: this submit step keeps
everything in it to its student and that group, folders 0770 (the instructors may still
delete) and files 0640. It copies under umask 027 and closes again what nbgrader's own
steps open (the copy keeps the home folder's modes, the last step makes the folder 0777),
so a submission is open to others only for the instants in between, and then only to
someone who already knows its name, which is unguessable and cannot be listed.

Where `inbound/` is not setgid (another exchange), the group would be the student's own
primary group, perhaps shared with every classmate: there the step keeps nbgrader's modes
and says why in its log rather than open the submission to that group.

Used by the users' image (hub/image/etc/jupyter/nbgrader_config.py):
`c.ExchangeFactory.submit = "autograder.hub_submit.PrivateSubmit"`.
"""
from __future__ import annotations

import os
import stat

from nbgrader.exchange.default.submit import ExchangeSubmit

FOLDER_MODE = 0o770
FILE_MODE = 0o640


class PrivateSubmit(ExchangeSubmit):
    """Submit into the exchange with nothing readable or writable by other students."""

    def _in_instructors_group(self, dest: str) -> bool:
        return self._inbound_is_setgid() and os.stat(dest).st_gid == os.stat(self.inbound_path).st_gid

    def _inbound_is_setgid(self) -> bool:
        return bool(os.stat(self.inbound_path).st_mode & stat.S_ISGID)

    def do_copy(self, src, dest, log=None):
        if os.path.dirname(dest) != self.inbound_path or not self._inbound_is_setgid():
            return super().do_copy(src, dest, log)  # the student's own cache, or another exchange
        # nbgrader's copy ends by giving the folder the home folder's mode, which drops setgid, so
        # the secret and timestamp written next would take the student's own group (maybe every
        # classmate's): the folder is made here (setgid and the instructors' group, from inbound/)
        # and nbgrader copies into a folder inside it, whose entries then move up
        os.mkdir(dest, FOLDER_MODE)
        staging = os.path.join(dest, ".copying")
        super().do_copy(src, staging, log)
        for name in os.listdir(staging):
            os.rename(os.path.join(staging, name), os.path.join(dest, name))
        os.rmdir(staging)

    def set_perms(self, dest, fileperms, dirperms):  # nbgrader calls it for the inbound folder only
        if self._in_instructors_group(dest):
            fileperms, dirperms = FILE_MODE, FOLDER_MODE
        super().set_perms(dest, fileperms, dirperms)

    def copy_files(self):
        old = os.umask(0o027)  # what the copy creates is closed to others from the start
        try:
            super().copy_files()
        finally:
            os.umask(old)
        dest = os.path.join(self.inbound_path, self.assignment_filename)
        if self._in_instructors_group(dest):
            # nbgrader's last step opened the folder to everyone (0777): closed again
            os.chmod(dest, FOLDER_MODE)
        else:
            self.log.warning("%s is not setgid in the instructors' group, so the submission keeps nbgrader's "
                             "modes (readable by other users who know its name)", self.inbound_path)

"""Who takes part in the hub test and how the course is set up there (shared by its modules)."""

COURSE_ID = "dlcourse"
ASSIGNMENT = "a01-convolution"
STUDENT_GROUP, INSTRUCTOR_GROUP = "dlct-students", "dlct-instructors"
INSTRUCTOR = "dlct-teacher"
# the group the watch service's account (the instructor's) shares with its uid-65534 kernels,
# and the sudoers rule that lets that account, and no other, run commands as uid 65534 in it
KERNEL_GROUP = "dlct-kernels"
SUDOERS_RULE = f"{INSTRUCTOR} ALL=(nobody:{KERNEL_GROUP}) NOPASSWD: ALL\n"
# each student and how they work: every answer right, only the first one, or the first one
# plus code that fakes passes and looks for what it should not read
STUDENTS = {"dlct-alice": "correct", "dlct-bob": "partial", "dlct-mallory": "hostile"}
# the watch service: one grading per student per 10 minutes, feedback showing test names
# only, a look at the exchange every 2 seconds, two notebooks graded at once
WATCH_RATE, WATCH_DETAIL, WATCH_INTERVAL, WATCH_WORKERS = "1/10m", "names", "2", "2"
# what the watch's kernels may need of the data cache (a03 and later prefetch MNIST's test set;
# a01 needs none): the hub test puts a copy there as root leaves a download, private
DATA_SETS = ("mnist-test-images", "mnist-test-labels")

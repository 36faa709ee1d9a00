"""nbgrader's configuration for the scratchvae course (run nbgrader from this folder).

    cd course
    nbgrader generate_assignment a1_backprop --force     # source/ -> release/ (solutions cut)
    nbgrader autograde a1_backprop --force               # submitted/<student>/a1_backprop/ -> autograded/

See README.md here for the whole workflow, offline and with an exchange.
"""

import os

c = get_config()  # noqa: F821 (nbgrader provides it)

c.CourseDirectory.course_id = "scratchvae"
c.CourseDirectory.root = os.path.dirname(os.path.abspath(__file__))  # works from any folder

# What a student sees where a solution was: the message every check cell reports until
# the function is written (tests/test_course.py looks for it).
c.ClearSolutions.code_stub = {"python": 'raise NotImplementedError("Exercise: write your solution here")'}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"

# Training in assignment 4 takes longer than nbgrader's default 30 seconds a cell in the
# full setting (SCRATCHVAE_FAST unset) on a slow laptop.
c.Execute.timeout = 900

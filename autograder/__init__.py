"""autograder: the instructor's pipeline for the course's nbgrader assignments.

A thin command line (cli.py) over one module per concern; each concern's module
registers its own sub-command. See `python -m autograder --help`.
"""
__version__ = "0.1.0"

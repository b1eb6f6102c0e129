"""What a notebook needs around the lesson: parameters and profiles, its session, plots, widgets, results, submit."""

from . import plots, results, widgets
from .handin import submit
from .parameters import load_parameters
from .session import start_session

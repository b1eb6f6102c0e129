"""What a notebook needs around the lesson: parameters and profiles, session, plots, widgets, results."""

"""ltray's results dashboard: a read-only Dash app over the studies in a results folder."""

"""Runs: their records (store), what a submission asks for (planner, recipes), which
steps go to the workers and when (scheduler, reconciler), and how lifecycle events
change a run (projections, projector)."""

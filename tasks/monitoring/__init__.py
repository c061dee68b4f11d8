"""Monitoring: the reference profile stored with a registered version, the drift statistics, the verdict of a
check against a window of served predictions or a batch, and the history of checks under PMF_HOME."""

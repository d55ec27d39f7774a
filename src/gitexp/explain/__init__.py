"""`gitexp explain A B`: which of the axes two runs differ on made the difference.

The plan (plan) holds A with each axis taken from B alone, and A and B themselves, each
over the seeds asked for; the history's runs stand in for planned runs wherever they match.
Each run still missing is made by the replay machinery (variants, runs), and the effects
are measured seed by seed (attribute) and shown (view).
"""

"""Pure domain: lead features, the scoring engine, training, the registry, monitoring statistics, rules, the batch logic.

Nothing here knows of Kafka, Faust, Redis, HTTP or the settings: every input is an argument.
"""

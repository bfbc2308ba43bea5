"""Call flows: YAML flows (`model`, `validate`, `schema`), run per call by the `interpreter`
one verb at a time (`verbs/`, one module per verb) under the `runtime`, which loads and
reloads the flows folder."""

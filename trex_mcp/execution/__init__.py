"""Execution: model resolution (`models`), the run spec (`spec`), the training worker that runs in a child process
(`worker`, with `callbacks` and `atomic`), and the job manager with its backends (`manager`, `backends`).

Nothing heavy is imported here: import the submodule you need.
"""

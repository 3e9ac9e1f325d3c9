"""Tasks as data: `TaskSpec` from `tasks/*.yaml`, the registry, and the sources a split is read from.

A task file says everything that differs between tasks (docs/tasks.md has the schema):

    name: xnli                          # equals the file name (xnli.yaml)
    type: <a task type>                 # xlt.tasktypes; code dispatches on it, never on the task's name
    version: 1
    labels: [entailment, neutral, contradiction]
    source_lang: en
    train_split: train                  # source language only
    dev_split: validation               # model selection, source language only
    languages: [en, fr, ...]            # every language evaluated, source language included
    eval_splits: [test, validation]
    metrics: [accuracy, macro_f1]
    hyperparameters: {lr: 2e-5}         # optional: the task's training defaults
    source:                             # or `sources:`, a list tried in order (first match wins)
      hub: facebook/xnli                # or `files: data/{split}-{lang}.tsv` (relative to the YAML)
      config: "{lang}"
      revision: <commit sha>
      columns: {text_a: premise, text_b: hypothesis, label: label}

Modules: `yamlfile` (safe YAML with line marks), `taskspec` (TaskSpec, Source, checks), `sources` (reading a
split), `formats` (local tables), `registry` (finding task files).
"""

from xlt.formats import TABLE_FORMATS, read_table
from xlt.tasks.registry import get_task, list_tasks, task_dirs, task_files, validate_files
from xlt.tasks.sources import (SplitData, available_splits, data_dir_from_env, describe_sources, load_split,
                               local_candidates, local_file)
from xlt.tasks.taskspec import Source, TaskSpec, check_task_file
from xlt.tasks.yamlfile import Problem, TaskFileError

__all__ = ["TaskSpec", "Source", "SplitData", "Problem", "TaskFileError", "check_task_file", "get_task",
           "list_tasks", "task_dirs", "task_files", "validate_files", "load_split", "available_splits",
           "describe_sources", "local_candidates", "local_file", "data_dir_from_env", "read_table", "TABLE_FORMATS"]

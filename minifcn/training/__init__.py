"""Training, one responsibility per file:

    config.py           TrainingConfig: every option of a run, checked, saved as config.json
    datasets.py         the training and validation sets a config names
    initial_weights.py  starting from a converted VGG16 or FCN checkpoint (--init)
    schedule.py         the learning rate of each iteration (poly or fixed, with warm-up)
    build.py            the pieces of a run made from its config, and the Trainer that gets them
    state.py            TrainingState: where a run stands (what resuming needs beside the weights)
    run_directory.py    the run's files: config.json, log.csv, best/last checkpoints, figures, resume, lock
    interrupt.py        Ctrl-C and SIGTERM: stop at the end of the step under way
    loop.py             Trainer: the loop itself
    distributed.py      several processes under mpiexec: who they are, how they agree, how they stop
    sharding.py         which images of each batch every process loads
    allreduce.py        the gradients summed over the processes, one call a step
    errors.py           what training raises; the command line turns it into messages and exit codes
"""

from .build import build_trainer
from .config import TrainingConfig
from .datasets import Subset, open_splits
from .errors import ConfigError, NonFiniteLoss, RunDirectoryError, TrainingInterrupted
from .loop import Trainer
from .run_directory import RunDirectory, lock_run_directory, read_config, resume_command
from .schedule import LearningRateSchedule
from .state import TrainingState

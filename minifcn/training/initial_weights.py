"""Starting a model from a converted VGG16 or FCN checkpoint (``--init``) instead of random weights."""

from ..files.checkpoint import load_checkpoint
from ..inference import expected_shapes
from .errors import ConfigError

# Layers an FCN for other classes cannot pass on: their shapes follow the number of classes.
CLASS_LAYER_PREFIXES = ("score_", "upscore")


def load_initial_weights(model, path):
    """Load what fits ``model`` from the checkpoint at ``path``; return the checkpoint's preprocessing,
    the input convention its weights were trained with (a dict, see ``data.transforms``).

    An FCN trained for another number of classes passes on its trunk and head; a classifier's fc6/fc7
    that only fit ``--fc-channels 4096`` are left out (those layers start afresh). Anything else that
    does not fit, or a checkpoint without the VGG16 convolutions, raises ConfigError.
    """
    checkpoint = load_checkpoint(path, shapes=expected_shapes)
    state = dict(checkpoint.state)
    expected = {name: tuple(parameter.shape) for name, parameter in model.parameters()}
    if checkpoint.metadata.get("arch") != "vgg16" and checkpoint.metadata.get("num_classes") != model.num_classes:
        state = {name: value for name, value in state.items() if not name.startswith(CLASS_LAYER_PREFIXES)}
    wrong = [f"{name}: checkpoint {tuple(value.shape)}, model {expected[name]}"
             for name, value in state.items() if name in expected and tuple(value.shape) != expected[name]]
    fc_mismatch = [line for line in wrong if line.startswith(("fc6", "fc7"))]
    if fc_mismatch and len(fc_mismatch) == len(wrong):
        state = {name: value for name, value in state.items() if not name.startswith(("fc6", "fc7"))}
        wrong = []
    if wrong:
        raise ConfigError(f"{path} does not fit this model ({'; '.join(wrong[:3])}); check --width and --arch")
    missing_convs = [name for name in expected if name.startswith("conv") and name not in state]
    if missing_convs:
        raise ConfigError(f"{path} lacks {', '.join(missing_convs[:4])}: not a VGG16 or FCN checkpoint")
    model.load_state_dict({name: value for name, value in state.items() if name in expected}, strict=False)
    return dict(checkpoint.metadata["preprocessing"])

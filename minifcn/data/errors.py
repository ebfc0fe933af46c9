"""The one exception the data package raises for bad user input."""


class DataError(ValueError):
    """Bad input data: a missing root, an empty split, an unreadable or corrupt file, a mask whose size
    differs from its image, label values out of range, an image of the wrong kind.

    The message is one line that names the file and what is wrong; the command lines print it and exit
    with code 2 (no traceback), because the fix is in the user's files, not in the code.
    """

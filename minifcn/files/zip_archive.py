"""Recognising a zip archive (a .npz or a torch .pth) without trusting it."""

import zipfile


def is_zip_archive(path):
    """True if ``path`` ends with a zip end-of-central-directory record.

    ``zipfile.is_zipfile`` itself raises BadZipFile on some malformed records (a multi-disk archive,
    found by fuzzing); such a file cannot be read as a zip either, so it is simply not one.
    """
    try:
        return zipfile.is_zipfile(path)
    except zipfile.BadZipFile:
        return False

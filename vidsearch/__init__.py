"""vidsearch: find moments in a folder of videos by typing what you want to see."""

__version__ = "0.1.0"

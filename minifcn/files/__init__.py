"""What minifcn reads and writes on disk, apart from datasets: its own checkpoints (``checkpoint``),
PyTorch ``.pth`` files read without torch (``pth``), and the atomic writes and zip sniffing they share."""

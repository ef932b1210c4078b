"""The Textual admin console (``phigate tui``). The only part of phigate that imports Textual;
it reaches the queue only through :class:`phigate.admin.AdminService`."""

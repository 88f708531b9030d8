"""Guards of the 账号申诉 area: none.

``freeze_for_appeal`` must work from every state, and whether an appeal backs it can only
be told from the database (the case row), which guards may not read: the step checks it
in the transition's transaction (``gzsb.appeals.steps``).
"""

from __future__ import annotations

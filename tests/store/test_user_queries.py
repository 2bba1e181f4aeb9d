"""User rows through their query module, on a real database."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import IntegrityError

from robolearn.store import Store, users


def test_user_rows(any_store: Store) -> None:
    with any_store.session() as db:
        assert users.count_users(db) == 0
        admin = users.add_user(db, "root", "hash-1", "admin")
        users.add_user(db, "ops", "hash-2", "operator")
        second_admin = users.add_user(db, "boss", "hash-3", "admin")
        db.commit()
        assert [u.username for u in users.list_users(db)] == ["root", "ops", "boss"]
        assert users.find_user(db, "ops").role == "operator"
        assert users.find_user(db, "nobody") is None
        assert users.get_user(db, admin.id).password_hash == "hash-1"
        assert users.count_users(db) == 3
        assert users.count_active_admins(db) == 2
        second_admin.active = False
        db.commit()
        assert users.count_active_admins(db) == 1
        with pytest.raises(IntegrityError):  # names are unique in the table itself
            users.add_user(db, "ops", "hash-4", "viewer")

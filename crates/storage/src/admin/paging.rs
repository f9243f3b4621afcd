//! Keyset paging: a page goes on strictly after the last row the previous one showed, by its
//! sort time and id, so rows changing between pages are neither skipped nor shown twice.

use sea_orm::{ColumnTrait, Condition};

use iap_domain::admin::{KeysetPosition, SortDirection};

/// Rows after `after` in `direction`: `(at, id)` strictly beyond the position.
pub(super) fn after_position<C: ColumnTrait>(
    at_column: C,
    id_column: C,
    direction: SortDirection,
    after: KeysetPosition,
) -> Condition {
    let id = after.id.to_string();
    match direction {
        SortDirection::OldestFirst => Condition::any().add(at_column.gt(after.at)).add(
            Condition::all()
                .add(at_column.eq(after.at))
                .add(id_column.gt(id)),
        ),
        SortDirection::NewestFirst => Condition::any().add(at_column.lt(after.at)).add(
            Condition::all()
                .add(at_column.eq(after.at))
                .add(id_column.lt(id)),
        ),
    }
}

"""Mapping between isa95 models and B2MML element trees, per document noun and release.

Each noun has a ``to_tree`` (model → tree in that release's element names)
and a ``from_tree`` (tree → model). Trees are read through :class:`Tracked`
so that every element a mapper did not consume can be reported as
*unmapped* rather than silently dropped. One module per noun family.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from isa95.b2mml.mapping import equipment as _equipment
from isa95.b2mml.mapping import material as _material
from isa95.b2mml.mapping import personnel as _personnel
from isa95.b2mml.mapping.batchlist import (
    _batch_list_from_tree,
    _batch_list_tree,
    _entry_from_tree,
    _entry_tree,
)
from isa95.b2mml.mapping.batchml import (
    _control_recipe_from_tree,
    _recipe_container,
    _recipe_from_container,
    _recipe_from_tree,
    _recipe_to_tree,
)
from isa95.b2mml.mapping.batchrecord import _bpr_from_tree, _bpr_to_tree
from isa95.b2mml.mapping.definitions import _definition_from_tree as _operations_definition
from isa95.b2mml.mapping.definitions import _definition_tree as _operations_definition_tree
from isa95.b2mml.mapping.definitions import _information_from_tree as _operations_information
from isa95.b2mml.mapping.definitions import _information_tree as _operations_information_tree
from isa95.b2mml.mapping.equipment import _equipment_from_tree, _equipment_to_tree
from isa95.b2mml.mapping.general_recipe import (
    _constraint_from_tree,
    _constraint_library_from_tree,
    _constraint_library_to_tree,
    _constraint_to_tree,
    _element_from_tree,
    _element_library_from_tree,
    _element_library_to_tree,
    _element_to_tree,
)
from isa95.b2mml.mapping.general_recipe import (
    _information_from_tree as _grecipe_information,
)
from isa95.b2mml.mapping.general_recipe import (
    _information_to_tree as _grecipe_information_tree,
)
from isa95.b2mml.mapping.general_recipe import _recipe_from_tree as _grecipe
from isa95.b2mml.mapping.general_recipe import _recipe_to_tree as _grecipe_tree
from isa95.b2mml.mapping.material import _material_from_tree, _material_to_tree
from isa95.b2mml.mapping.operations import (
    _OPS,
    _PROD,
    _performance_from_tree,
    _performance_to_tree,
    _schedule_from_tree,
    _schedule_to_tree,
)
from isa95.b2mml.mapping.personnel import _personnel_from_tree, _personnel_to_tree
from isa95.b2mml.mapping.products import (
    _definition_from_tree,
    _definition_tree,
    _product_information_from_tree,
    _product_information_tree,
)
from isa95.b2mml.mapping.requests import (
    request_from_tree,
    request_to_tree,
    response_from_tree,
    response_to_tree,
)
from isa95.b2mml.mapping.segments import (
    _segment_from_tree,
    _segment_to_tree,
    _segments_from_tree,
    _segments_to_tree,
)
from isa95.b2mml.mapping.trees import (
    ASSUMED_TIMEZONE,
    NORMALISED,
    V0600,
    V0701,
    Tracked,
    _class_tree,
    _get,
    _list,
    _parse_time,
    _where,
    content_errors,
    track,
    unconsumed,
)
from isa95.batchlist import BatchList, BatchListEntry
from isa95.batchrecord import BatchProductionRecord
from isa95.equipment import Equipment, EquipmentClass, EquipmentInformation
from isa95.general_recipe import (
    GeneralRecipe,
    GeneralRecipeInformation,
    ProcessElement,
    ProcessElementLibrary,
    ResourceConstraint,
    ResourceConstraintLibrary,
)
from isa95.material import (
    MaterialClass,
    MaterialDefinition,
    MaterialInformation,
    MaterialLot,
    MaterialSubLot,
)
from isa95.operations import (
    OperationsPerformance,
    OperationsRequest,
    OperationsResponse,
    OperationsSchedule,
    ProcessSegment,
    ProcessSegmentInformation,
    ProductDefinition,
    ProductInformation,
)
from isa95.personnel import Person, PersonnelClass, PersonnelInformation
from isa95.recipe import Recipe, RecipeType

__all__ = [
    "ASSUMED_TIMEZONE",
    "BARE_NOUNS",
    "NORMALISED",
    "NOUNS",
    "Noun",
    "Tracked",
    "_get",
    "_list",
    "_parse_time",
    "_where",
    "content_errors",
    "track",
    "unconsumed",
]


@dataclass(frozen=True)
class Noun:
    """A document noun: its element name per release and its model mapping."""

    name: str
    model: type
    versions: tuple[str, ...]
    to_tree: Callable[[Any, str], dict[str, Any]]
    from_tree: Callable[[dict[str, Any], str], Any]
    container: Callable[[list[Any], str], tuple[str, dict[str, Any]] | None] | None = None
    """Models written bare as a container root (``(root, tree)``), or None: the noun itself."""
    from_container: Callable[[dict[str, Any], list[Any], str], None] | None = None
    """Reads what a container root holds beside the nouns into the models read from it."""
    accepts: Callable[[Any], bool] | None = None
    """Which models of ``model``'s type the noun writes (None: all of them)."""


NOUNS: dict[str, Noun] = {
    n.name: n
    for n in [
        Noun(
            "MaterialInformation",
            MaterialInformation,
            (V0701, V0600),
            _material_to_tree,
            _material_from_tree,
        ),
        Noun(
            "EquipmentInformation",
            EquipmentInformation,
            (V0701, V0600),
            _equipment_to_tree,
            _equipment_from_tree,
        ),
        Noun(
            "PersonnelInformation",
            PersonnelInformation,
            (V0701, V0600),
            _personnel_to_tree,
            _personnel_from_tree,
        ),
        Noun(
            "ProcessSegmentInformation",
            ProcessSegmentInformation,
            (V0701, V0600),
            _segments_to_tree,
            _segments_from_tree,
        ),
        Noun(
            "OperationsSchedule",
            OperationsSchedule,
            (V0701, V0600),
            lambda m, v: _schedule_to_tree(m, v, _OPS),
            lambda t, v: _schedule_from_tree(t, v, _OPS),
        ),
        Noun(
            "ProductionSchedule",
            OperationsSchedule,
            (V0600,),
            lambda m, v: _schedule_to_tree(m, v, _PROD),
            lambda t, v: _schedule_from_tree(t, v, _PROD),
        ),
        Noun(
            "OperationsPerformance",
            OperationsPerformance,
            (V0701, V0600),
            lambda m, v: _performance_to_tree(m, v, _OPS),
            lambda t, v: _performance_from_tree(t, v, _OPS),
        ),
        Noun(
            "ProductionPerformance",
            OperationsPerformance,
            (V0600,),
            lambda m, v: _performance_to_tree(m, v, _PROD),
            lambda t, v: _performance_from_tree(t, v, _PROD),
        ),
        Noun(
            "BatchProductionRecord",
            BatchProductionRecord,
            (V0701, V0600),
            _bpr_to_tree,
            _bpr_from_tree,
        ),
        Noun(
            "MasterRecipe",
            Recipe,
            (V0701, V0600),
            _recipe_to_tree,
            _recipe_from_tree,
            _recipe_container,
            _recipe_from_container,
            lambda m: m.recipe_type != RecipeType.CONTROL,
        ),
        Noun(
            "ControlRecipe",
            Recipe,
            (V0701, V0600),
            _recipe_to_tree,
            _control_recipe_from_tree,
            _recipe_container,
            _recipe_from_container,
            lambda m: m.recipe_type == RecipeType.CONTROL,
        ),
        Noun(
            "BatchList",
            BatchList,
            (V0701, V0600),
            _batch_list_tree,
            _batch_list_from_tree,
        ),
        Noun(
            "BatchListEntry",
            BatchListEntry,
            (V0701, V0600),
            _entry_tree,
            _entry_from_tree,
        ),
        Noun(
            "ProductInformation",
            ProductInformation,
            (V0600,),
            _product_information_tree,
            _product_information_from_tree,
        ),
        Noun(
            "ProductDefinition",
            ProductDefinition,
            (V0600,),
            _definition_tree,
            _definition_from_tree,
        ),
        Noun(
            "OperationsDefinitionInformation",
            ProductInformation,
            (V0701,),
            _operations_information_tree,
            _operations_information,
        ),
        Noun(
            "OperationsDefinition",
            ProductDefinition,
            (V0701,),
            _operations_definition_tree,
            _operations_definition,
        ),
        Noun("GRecipe", GeneralRecipe, (V0701, V0600), _grecipe_tree, _grecipe),
        Noun(
            "GRecipeInformation",
            GeneralRecipeInformation,
            (V0701, V0600),
            _grecipe_information_tree,
            _grecipe_information,
        ),
        Noun(
            "ProcessElementLibrary",
            ProcessElementLibrary,
            (V0701, V0600),
            _element_library_to_tree,
            _element_library_from_tree,
        ),
        Noun(
            "ResourceConstraintLibrary",
            ResourceConstraintLibrary,
            (V0701, V0600),
            _constraint_library_to_tree,
            _constraint_library_from_tree,
        ),
        Noun(
            "ProcessElement", ProcessElement, (V0701, V0600), _element_to_tree, _element_from_tree
        ),
        Noun(
            "ResourceConstraint",
            ResourceConstraint,
            (V0701, V0600),
            _constraint_to_tree,
            _constraint_from_tree,
        ),
    ]
}
"""Supported nouns. A model type maps to the first noun listed for it."""

_BOTH = (V0701, V0600)
BARE_NOUNS: dict[str, Noun] = {
    n.name: n
    for n in [
        Noun(
            "MaterialClass",
            MaterialClass,
            _BOTH,
            lambda m, v: _class_tree(m, "MaterialClassProperty"),
            _material._class_from_tree,
        ),
        Noun(
            "MaterialDefinition",
            MaterialDefinition,
            _BOTH,
            lambda m, v: _material._definition_tree(m),
            _material._definition_from_tree,
        ),
        Noun("MaterialLot", MaterialLot, _BOTH, _material._lot_tree, _material._lot_from_tree),
        Noun(
            "MaterialSubLot",
            MaterialSubLot,
            _BOTH,
            _material._sublot_tree,
            _material._sublot_from_tree,
        ),
        Noun(
            "Equipment",
            Equipment,
            _BOTH,
            _equipment._equipment_tree,
            _equipment._item_from_tree,
        ),
        Noun(
            "EquipmentClass",
            EquipmentClass,
            _BOTH,
            _equipment._class_to_tree,
            _equipment._class_from_tree,
        ),
        Noun("Person", Person, _BOTH, _personnel._person_tree, _personnel._person_from_tree),
        Noun(
            "PersonnelClass",
            PersonnelClass,
            _BOTH,
            _personnel._class_to_tree,
            _personnel._class_from_tree,
        ),
        Noun("ProcessSegment", ProcessSegment, _BOTH, _segment_to_tree, _segment_from_tree),
        Noun(
            "OperationsRequest",
            OperationsRequest,
            _BOTH,
            request_to_tree(_OPS),
            request_from_tree(_OPS),
        ),
        Noun(
            "ProductionRequest",
            OperationsRequest,
            (V0600,),
            request_to_tree(_PROD),
            request_from_tree(_PROD),
        ),
        Noun(
            "OperationsResponse",
            OperationsResponse,
            _BOTH,
            response_to_tree(_OPS),
            response_from_tree(_OPS),
        ),
        Noun(
            "ProductionResponse",
            OperationsResponse,
            (V0600,),
            response_to_tree(_PROD),
            response_from_tree(_PROD),
        ),
    ]
}
"""Single resources, as bare roots and as transaction nouns (``SyncMaterialLot``,
``ProcessEquipment`` …): the same models the ``…Information`` nouns hold; and bare
requests and responses (no transactions), the models schedules and performance hold."""
NOUNS.update(BARE_NOUNS)

"""Admin behaviour shared by the apps' admin modules."""

from django.contrib import admin


class ReadOnlyAdminMixin(admin.ModelAdmin):
    """For records that code writes and staff only read: no add or change; no delete either
    unless ``deletable`` is set."""

    deletable = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return self.deletable and super().has_delete_permission(request, obj)

"""UsageQuota, QuotaEvent, QuotaCounter and QuotaReservation, moved from ``analytics`` with their tables.

State only (``database_operations=[]``): the tables exist already, created by analytics' own
migrations; ``analytics.0010`` took the models out of its state just before.
"""

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ("analytics", "0010_move_alerts_and_quotas"),
        ('auth', '0012_alter_user_first_name_max_length'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name='QuotaCounter',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('key', models.CharField(max_length=200, unique=True)),
                        ('value', models.BigIntegerField(default=0)),
                        ('hits', models.JSONField(default=list)),
                        ('expires_at', models.DateTimeField(db_index=True)),
                    ],
                    options={
                        'db_table': 'analytics_quotacounter',
                    },
                ),
                migrations.CreateModel(
                    name='QuotaReservation',
                    fields=[
                        ('id', models.CharField(max_length=200, primary_key=True, serialize=False)),
                        ('amounts', models.JSONField(default=dict)),
                        ('expires_at', models.DateTimeField(db_index=True)),
                        ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                    ],
                    options={
                        'db_table': 'analytics_quotareservation',
                    },
                ),
                migrations.CreateModel(
                    name='QuotaEvent',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('limit', models.CharField(choices=[('requests_per_minute', 'Requests Per Minute'), ('tokens_per_day', 'Tokens Per Day'), ('cost_per_day', 'Cost Per Day'), ('cost_per_month', 'Cost Per Month'), ('global_daily_cost', 'Global Daily Cost')], max_length=32)),
                        ('stage', models.CharField(choices=[('request', 'when the message was posted'), ('generation', 'when the generation started'), ('title', 'title generation (skipped)'), ('evaluation', 'evaluation run call (skipped)')], max_length=16)),
                        ('used', models.DecimalField(decimal_places=6, max_digits=18)),
                        ('requested', models.DecimalField(decimal_places=6, max_digits=18)),
                        ('allowed', models.DecimalField(decimal_places=6, max_digits=18)),
                        ('resets_at', models.DateTimeField()),
                        ('created_at', models.DateTimeField(db_index=True, default=django.utils.timezone.now)),
                        ('user', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.DB_SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                    ],
                    options={
                        'verbose_name': 'quota event',
                        'db_table': 'analytics_quotaevent',
                        'ordering': ['-created_at'],
                    },
                ),
                migrations.CreateModel(
                    name='UsageQuota',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('requests_per_minute', models.PositiveIntegerField(blank=True, null=True)),
                        ('tokens_per_day', models.PositiveBigIntegerField(blank=True, help_text='Input plus output tokens per reporting-zone day.', null=True)),
                        ('cost_per_day_usd', models.DecimalField(blank=True, decimal_places=6, max_digits=12, null=True)),
                        ('cost_per_month_usd', models.DecimalField(blank=True, decimal_places=6, max_digits=12, null=True)),
                        ('note', models.CharField(blank=True, max_length=300)),
                        ('updated_at', models.DateTimeField(auto_now=True)),
                        ('group', models.OneToOneField(blank=True, null=True, on_delete=django.db.models.deletion.DB_CASCADE, related_name='usage_quota', to='auth.group')),
                        ('user', models.OneToOneField(blank=True, null=True, on_delete=django.db.models.deletion.DB_CASCADE, related_name='usage_quota', to=settings.AUTH_USER_MODEL)),
                    ],
                    options={
                        'verbose_name': 'usage quota',
                        'db_table': 'analytics_usagequota',
                        'permissions': [('exempt_from_quotas', 'Is exempt from per-user AI quotas and rate limits')],
                        'constraints': [models.CheckConstraint(condition=models.Q(models.Q(('group__isnull', True), ('user__isnull', False)), models.Q(('group__isnull', False), ('user__isnull', True)), _connector='OR'), name='usage_quota_for_a_user_or_a_group')],
                    },
                ),
            ],
            database_operations=[],
        )
    ]
